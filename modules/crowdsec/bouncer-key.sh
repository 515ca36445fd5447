#!/bin/sh
# Hand-written, shared by every host: puts the CrowdSec firewall bouncer's
# configuration and API key into its runtime directory.
# Usage: bouncer-key.sh KEY_FILE CONFIG RUNTIME_DIR
#   KEY_FILE     the decrypted secret (/run/potato-secrets/crowdsec-bouncer-key)
#   CONFIG       the generated bouncer.yaml (no key in it)
#   RUNTIME_DIR  where the bouncer reads config.yaml and config.yaml.local
# The bouncer merges CONFIG.local over CONFIG (yamlpatch, every release since
# 0.0.2x), so the key lives only in the 0600 override, never in the Nix store.
# The key is CrowdSec's: letters and digits only (cscli makes 32 hex digits);
# anything else is refused rather than quoted into YAML.
set -eu
key_file=$1
config=$2
dir=$3
key=$(tr -d '\n' <"$key_file")
case $key in
'' | *[!A-Za-z0-9]*)
	echo "bouncer-key.sh: $key_file must hold letters and digits only" >&2
	exit 1
	;;
esac
umask 077
cp "$config" "$dir/config.yaml"
printf 'api_key: %s\n' "$key" >"$dir/config.yaml.local.new"
mv "$dir/config.yaml.local.new" "$dir/config.yaml.local"
