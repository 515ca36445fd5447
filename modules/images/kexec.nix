# Hand-written: the kexec installer (`images.<host>.kexec`) that `potato
# bootstrap` boots on a machine running another Linux. nixpkgs' netboot-minimal
# installer, plus: the host key and login keys carried in the initrd by
# kexec-run.sh (copied into the new root in stage 1), and a tree with what the
# launcher needs: kernel, initrd, the kernel command line, a static kexec and
# the launcher itself.
{ config, lib, pkgs, potato, ... }:
let
  build = config.system.build;
in
{
  boot.initrd.postMountCommands = ''
    if [ -d /potato ]; then
      mkdir -m 0755 -p $targetRoot/etc/ssh $targetRoot/root/.ssh
      install -m 0600 /potato/ssh_host_ed25519_key $targetRoot/etc/ssh/ssh_host_ed25519_key
      install -m 0644 /potato/ssh_host_ed25519_key.pub $targetRoot/etc/ssh/ssh_host_ed25519_key.pub
      install -m 0600 /potato/authorized_keys $targetRoot/root/.ssh/authorized_keys
    fi
  '';
  services.openssh.enable = true;
  services.openssh.hostKeys = [ { type = "ed25519"; path = "/etc/ssh/ssh_host_ed25519_key"; } ];
  environment.systemPackages = [ pkgs.dosfstools pkgs.e2fsprogs pkgs.util-linux ];
  system.build.potatoKexec = pkgs.runCommand "potato-kexec-${potato.name}" { } ''
    mkdir -p $out
    cp ${build.kernel}/${config.system.boot.loader.kernelFile} $out/kernel
    cp ${build.netbootRamdisk}/initrd $out/initrd
    cp ${pkgs.pkgsStatic.kexec-tools}/bin/kexec $out/kexec
    echo "init=${build.toplevel}/init ${toString config.boot.kernelParams}" > $out/cmdline
    cp ${potato.kexecRun} $out/run
  '';
}
