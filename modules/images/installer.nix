# Hand-written: the n250's installer ISO. It boots nixpkgs' minimal installer
# with SSH on, and carries the host's whole system closure in its store, so
# `potato bootstrap` can install the exact system without a network.
{ lib, potato, ... }:
{
  isoImage.isoBaseName = lib.mkForce "potato-${potato.name}-installer";
  isoImage.storeContents = [ potato.toplevel ];
  environment.etc."potato/system".text = "${potato.toplevel}\n";
  services.openssh.enable = true;
}
