# Hand-written: a host's part in the fleet's monitoring → NixOS. Imported from
# modules/generated/<host>/default.nix as
# (import ../../monitoring.nix { spec = <monitoring/monitoring.json>; dir = <monitoring/>; }).
# potato decides who scrapes whom and writes every native file (see
# src/monitoring); this module only places them:
# - every host: node-exporter (native; the firewall opening to the hub's tunnel
#   address is in potato's nftables table, not NixOS's firewall), a timer that
#   feeds its textfile collector (WireGuard handshakes, container health), and
#   Grafana Alloy shipping the journal and container logs to the hub's Loki;
# - the hub: its prometheus, alertmanager and grafana containers read their
#   configuration from the generated directories, mounted read-only.
{ spec, dir }:
{ lib, pkgs, config, ... }:
let
  engine = if spec.engine == "docker" then config.virtualisation.docker.package else pkgs.podman;
in
lib.mkMerge [
  {
    services.prometheus.exporters.node = {
      enable = true;
      port = spec.exporterPort;
      openFirewall = false;
      enabledCollectors = [ "systemd" "textfile" ];
      extraFlags = [
        "--collector.textfile.directory=${spec.textfileDir}"
        "--collector.systemd.enable-restarts-metrics"
      ];
    };
    systemd.tmpfiles.rules = [ "d ${spec.textfileDir} 0755 root root -" ];
    systemd.services.potato-textfile = {
      description = "node-exporter textfile metrics: WireGuard handshakes, container health";
      path = [ pkgs.coreutils pkgs.gawk pkgs.wireguard-tools ] ++ lib.optional (spec.engine != null) engine;
      serviceConfig.Type = "oneshot";
      script = "${pkgs.runtimeShell} ${dir + "/textfile.sh"} ${spec.textfileDir} ${if spec.engine == null then "" else spec.engine}";
    };
    systemd.timers.potato-textfile = {
      wantedBy = [ "timers.target" ];
      timerConfig = { OnBootSec = "30s"; OnUnitActiveSec = "30s"; };
    };
    services.alloy.enable = true;
    environment.etc."alloy/config.alloy".source = dir + "/alloy.alloy";
    # The journal and the engine's container log files are root's to read.
    systemd.services.alloy.serviceConfig.SupplementaryGroups = [ "systemd-journal" ];
  }
  (lib.mkIf spec.hub {
    virtualisation.oci-containers.containers = {
      prometheus.volumes = [ "${dir + "/prometheus"}:/etc/prometheus:ro" ];
      alertmanager.volumes = [ "${dir + "/alertmanager"}:/etc/alertmanager:ro" ];
      grafana.volumes = [ "${dir + "/grafana"}:/etc/grafana/provisioning:ro" ];
    };
  })
]
