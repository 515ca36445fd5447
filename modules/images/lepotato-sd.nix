# Hand-written: the Le Potato's SD-card image, on top of nixpkgs'
# sd-image-aarch64.nix (MBR, ext4 root, extlinux). The Amlogic S905X boot ROM
# reads u-boot from the card's first sectors: the u-boot binary is written
# after sector 0 (keeping the MBR's partition table) once the image is built.
# u-boot comes from pkgsCross.aarch64-multiplatform (built on x86_64: the
# Amlogic signing tool in its build is an x86_64 binary).
{ lib, pkgs, ... }:
let
  uboot = pkgs.pkgsBuildBuild.pkgsCross.aarch64-multiplatform.ubootLibreTechCC;
in
{
  sdImage = {
    # No Raspberry Pi firmware partition: this board never reads it.
    populateFirmwareCommands = lib.mkForce "";
    firmwareSize = lib.mkForce 1;
    # 8 MiB before the first partition leaves room for u-boot.
    firmwarePartitionOffset = 8;
    compressImage = false;
    postBuildCommands = ''
      # u-boot.gxl.sd.bin starts with its own 512-byte MBR area: keep ours
      # (the partition table) and write the rest from byte 512 on.
      dd if=${uboot}/u-boot.gxl.sd.bin of=$img conv=fsync,notrunc bs=512 skip=1 seek=1
    '';
  };
}
