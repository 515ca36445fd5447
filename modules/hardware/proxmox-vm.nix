# QEMU/KVM guest on Proxmox VE: virtio disk and NIC, SeaBIOS + GRUB, serial console,
# guest agent (Proxmox reads the VM's addresses through it).
{ lib, modulesPath, ... }:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  nixpkgs.hostPlatform = "x86_64-linux";

  services.qemuGuest.enable = true;
  boot.loader.grub.enable = true;
  boot.loader.grub.device = lib.mkDefault "/dev/sda";
  boot.initrd.availableKernelModules = [ "virtio_pci" "virtio_scsi" "virtio_blk" "ahci" "sr_mod" ];
  boot.kernelParams = [ "console=ttyS0,115200" "console=tty0" ];
  boot.growPartition = true;

  fileSystems."/" = lib.mkDefault {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
}
