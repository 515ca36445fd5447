# Libre Computer AML-S905X-CC "Le Potato": aarch64 (Cortex-A53), 2 GB RAM, SD card.
# The Amlogic boot ROM loads u-boot from the card's first sectors (MBR card);
# u-boot reads extlinux.conf, so NixOS uses the generic extlinux loader, not GRUB.
{ lib, pkgs, ... }:
{
  nixpkgs.hostPlatform = "aarch64-linux";

  boot.loader.grub.enable = false;
  boot.loader.generic-extlinux-compatible.enable = true;
  boot.loader.generic-extlinux-compatible.configurationLimit = 10;
  hardware.deviceTree.name = "amlogic/meson-gxl-s905x-libretech-cc.dtb";
  boot.kernelParams = [ "console=ttyAML0,115200n8" ];
  boot.initrd.availableKernelModules = [ "mmc_block" "usbhid" "usb_storage" "uas" ];

  fileSystems."/" = lib.mkDefault { device = "/dev/disk/by-label/NIXOS_SD"; fsType = "ext4"; };

  # 2 GB of RAM: compressed swap in RAM, and never build on the board.
  zramSwap.enable = true;
  zramSwap.memoryPercent = 50;
  nix.settings.max-jobs = lib.mkDefault 1;

  # Spare the SD card: keep the journal small.
  services.journald.extraConfig = lib.mkAfter ''
    SystemMaxUse=100M
  '';
}
