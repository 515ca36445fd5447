# Hand-written: a host's Traefik configuration → its container. Imported from
# modules/generated/<host>/default.nix as (import ../../edge.nix { dir = <traefik/>; }).
# potato writes both files (src/edge/traefik.rs): traefik.yml, the static
# configuration Traefik reads from /etc/traefik by default (and the catalog's
# cmd names with --configFile), and dynamic.yml, the file provider's routers,
# services and middlewares. This module only mounts the directory, read-only;
# a changed file changes the unit, so a deploy restarts Traefik with it.
{ dir }:
{ ... }:
{
  virtualisation.oci-containers.containers.traefik.volumes = [ "${dir}:/etc/traefik:ro" ];
}
