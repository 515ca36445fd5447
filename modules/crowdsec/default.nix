# Hand-written: a host's intrusion prevention → NixOS. Imported from
# modules/generated/<host>/default.nix as
# (import ../../crowdsec { spec = <crowdsec/crowdsec.json>; dir = <crowdsec/>; }).
# potato writes every native file (src/intrusion): the acquisition files, the
# bouncer's configuration and its nftables tables. This module only places them:
# - the CrowdSec container (the catalog's, Debian flavour: it has journalctl)
#   gets the acquisition files, read-only, and publishes its Local API on the
#   host's loopback only;
# - the CrowdSec firewall bouncer runs on the host (nftables, set-only mode):
#   before it starts, its own tables are (re)loaded from ./bouncer.nft, outside
#   networking.nftables (so a deploy that reloads potato's table keeps the
#   bans), and its API key goes from the decrypted secret into its .local
#   override (../crowdsec/bouncer-key.sh). The container registers the same key
#   at start (BOUNCER_KEY_firewall, from the same secret).
# nixpkgs' services.crowdsec-firewall-bouncer is not used: it renders its YAML
# from Nix settings (not the tested file) and its rulesets hook input only.
{ spec, dir }:
{ lib, pkgs, config, ... }:
let
  run = "/run/crowdsec-firewall-bouncer";
  engineUnit = "${spec.engine}-${spec.engineService}.service";
in
{
  # The container reads sshd's journal from /var/log/journal (catalog volume).
  # With no journal file there, journalctl finds nothing and CrowdSec exits at
  # start (Debian's 1.4.6, measured while writing tests/crowdsec.rs; the
  # image's 1.6.8 was not run here), so a volatile journal would take
  # intrusion prevention down.
  assertions = [{
    assertion = config.services.journald.storage == "persistent";
    message = "CrowdSec reads sshd's journal from /var/log/journal: services.journald.storage must stay \"persistent\" (the NixOS default) on a host that runs crowdsec";
  }];

  virtualisation.oci-containers.containers.${spec.engineService} = {
    ports = [ "127.0.0.1:${toString spec.lapiPort}:${toString spec.lapiPort}/tcp" ];
    volumes = map (f: "${dir + "/acquis.d/${f}"}:${spec.acquisDir}/${f}:ro") spec.acquisitions;
  };

  systemd.services.crowdsec-firewall-bouncer = {
    description = "CrowdSec firewall bouncer (nftables, potato's tables)";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" "nftables.service" engineUnit ];
    wants = [ engineUnit ];
    restartTriggers = [ (dir + "/bouncer.yaml") (dir + "/bouncer.nft") ];
    serviceConfig = {
      RuntimeDirectory = "crowdsec-firewall-bouncer";
      RuntimeDirectoryMode = "0700";
      ExecStartPre = [
        "${pkgs.nftables}/bin/nft -f ${dir + "/bouncer.nft"}"
        "${pkgs.runtimeShell} ${./bouncer-key.sh} ${spec.keyFile} ${dir + "/bouncer.yaml"} ${run}"
      ];
      ExecStart = "${lib.getExe pkgs.crowdsec-firewall-bouncer} -c ${run}/config.yaml";
      # The Local API comes up after the engine's hub update: retry until then.
      Restart = "always";
      RestartSec = "10s";
      LimitNOFILE = 65536;
    };
  };
}
