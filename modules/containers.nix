# Hand-written: a host's generated containers.json → NixOS. Imported from
# modules/generated/<host>/default.nix as
# (import ../../containers.nix { spec = <containers.json>; dir = <that directory>; }).
# The spec is potato's (networks, containers with their engine flags, data
# mounts and tmpfiles prefixes, databases); this module only maps it onto NixOS
# options and adds what virtualisation.oci-containers lacks: networks created
# before the containers that join them, each container's paths created (from
# dir/containers-tmpfiles.conf) after its mounts, and postgres databases
# created idempotently.
{ spec, dir }:
{ lib, pkgs, config, ... }:
let
  backend = spec.backend;
  engine = if backend == "docker" then config.virtualisation.docker.package else pkgs.podman;
  bin = "${engine}/bin/${backend}";
  unit = name: "${backend}-${name}";
  netUnit = net: "${backend}-network-${net}";
  usesSocket = lib.any (c: lib.any (lib.hasInfix ":/var/run/docker.sock") c.volumes)
    (lib.attrValues spec.containers);
in
{
  virtualisation.podman.enable = backend == "podman";
  virtualisation.docker.enable = backend == "docker";
  # The engine socket, for the few services whose catalog entry declares it.
  virtualisation.podman.dockerSocket.enable = backend == "podman" && usesSocket;
  virtualisation.oci-containers.backend = backend;
  virtualisation.oci-containers.containers = lib.mapAttrs
    (name: c: {
      inherit (c) image cmd environment environmentFiles ports volumes dependsOn extraOptions;
      log-driver = c."log-driver";
    })
    spec.containers;

  systemd.services =
    # One network per zone, created before the containers that join it.
    lib.mapAttrs'
      (net: n: lib.nameValuePair (netUnit net) {
        description = "Container network ${net} (${n.subnet})";
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        # ipRange (the proxy network): the engine hands out only these
        # addresses, so Traefik's fixed one is never taken first.
        script = "${bin} network inspect ${net} >/dev/null 2>&1 || ${bin} network create --subnet=${n.subnet}${if n ? ipRange then " --ip-range=${n.ipRange}" else ""} ${net}";
        wantedBy = [ "multi-user.target" ];
      })
      spec.networks
    // lib.mapAttrs'
      (name: c: lib.nameValuePair (unit name) ({
        after = map (n: "${netUnit n}.service") c.networks;
        requires = map (n: "${netUnit n}.service") c.networks;
        serviceConfig.Restart = lib.mkDefault "always";
        # Volumes on a data disk (mounted nofail): require and follow the mount,
        # so nothing is written into the root filesystem under the mount point.
        unitConfig.RequiresMountsFor = c.requiresMountsFor;
        # The paths this container needs, with the owner and mode its image
        # expects (dir/containers-tmpfiles.conf, from the catalog contracts),
        # created after the mounts and before the engine starts it.
        preStart = lib.mkIf (c.tmpfiles != [ ]) (lib.mkBefore ''
          ${pkgs.systemd}/bin/systemd-tmpfiles --create ${lib.concatMapStringsSep " " (p: lib.escapeShellArg "--prefix=${p}") c.tmpfiles} ${dir + "/containers-tmpfiles.conf"}
        '');
      } // lib.optionalAttrs (c.sharesNetworkOf != null) {
        # A member of another container's network namespace (gluetun's) goes
        # down and up with it, or it would keep a dead namespace.
        bindsTo = [ "${unit c.sharesNetworkOf}.service" ];
        after = [ "${unit c.sharesNetworkOf}.service" ];
      }))
      spec.containers
    // lib.optionalAttrs (spec.databases != [ ]) {
      # One database and role per consuming app (dir/postgres-init.sh, generated);
      # safe to run at every start. Passwords reach psql on stdin only.
      potato-postgres-init = {
        description = "Create the databases and roles of postgres's consumers";
        after = [ "${unit "postgres"}.service" ];
        requires = [ "${unit "postgres"}.service" ];
        wantedBy = [ "multi-user.target" ];
        path = [ pkgs.coreutils pkgs.gnused ];
        serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
        script = "${pkgs.runtimeShell} ${dir + "/postgres-init.sh"} ${bin}";
      };
    };
}
