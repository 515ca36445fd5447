# Hand-written: the identity host's authentik blueprint → its containers.
# Imported from modules/generated/<host>/default.nix as
# (import ../../sso.nix { dir = ./authentik; }) on the fleet's identity host.
# potato renders dir/potato-fleet.yaml (src/edge/blueprint.rs): a forward-auth
# provider and an application per protected route of every host, and the
# embedded outpost's provider list. authentik discovers every *.yaml under
# /blueprints (its blueprints_dir), so the directory is mounted read-only at
# /blueprints/potato, beside the image's own default/ and system/ blueprints,
# in the server and in the worker (which applies blueprints and re-applies
# this one when it changes).
{ dir }:
{ ... }:
{
  virtualisation.oci-containers.containers = {
    authentik.volumes = [ "${dir}:/blueprints/potato:ro" ];
    authentik-worker.volumes = [ "${dir}:/blueprints/potato:ro" ];
  };
}
