# Hand-written: what every potato host shares. Host-specific values come from
# modules/generated/<host>/default.nix; hardware from modules/hardware/<profile>.nix.
{ lib, pkgs, ... }:
{
  nix.settings = {
    experimental-features = [ "nix-command" "flakes" ];
    trusted-users = [ "root" ];
    auto-optimise-store = true;
  };
  nix.gc = {
    automatic = true;
    dates = "weekly";
    options = "--delete-older-than 30d";
  };

  # Users are declared, never edited on the host. root logs in by key only
  # (the keys come from the host file's [ssh] authorized_keys; the sshd
  # settings are the generated baseline in modules/generated/<host>).
  users.mutableUsers = false;
  users.users.root.hashedPassword = "!";

  services.openssh = {
    enable = true;
    openFirewall = false; # potato's own firewall decides who reaches SSH
  };

  # Bounded logs: small disks (the Le Potato's SD card) must not fill up.
  services.journald.extraConfig = ''
    SystemMaxUse=500M
    MaxRetentionSec=1month
  '';

  time.timeZone = lib.mkDefault "UTC";
  services.timesyncd.enable = lib.mkDefault true;
  i18n.defaultLocale = "en_US.UTF-8";
  console.keyMap = lib.mkDefault "us";

  networking.useDHCP = lib.mkDefault true;
  # zstd: potato compresses closures on the wire and the host decompresses them.
  environment.systemPackages = with pkgs; [ curl htop git vim zstd ];
  documentation.nixos.enable = false;
}
