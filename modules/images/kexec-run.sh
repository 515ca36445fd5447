#!/bin/sh
# potato's kexec launcher, the `run` file of `images.<host>.kexec`. `potato
# bootstrap` unpacks the tree on a machine running any Linux, puts the host's
# pre-generated SSH host key and the admins' login keys under extra/potato/,
# and runs this as root. The extra files travel as a cpio archive appended to
# the initrd (the kernel unpacks concatenated archives); the installer's
# stage 1 copies them into place, so the installer answers SSH with the host
# key potato expects. Needs cpio; kexec is the tree's own (static) binary.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if ! command -v cpio >/dev/null 2>&1; then
  echo "cpio is missing on this machine; install it (apt install cpio, dnf install cpio)" >&2
  exit 20
fi
( cd extra && find . -print | cpio -o -H newc --quiet ) > extra.cpio
cat initrd extra.cpio > initrd.potato
./kexec --load ./kernel --initrd=./initrd.potato --command-line "$(cat cmdline)"
# Let this SSH session end cleanly before the kernel is replaced.
nohup setsid sh -c "sleep 3; '$here/kexec' -e" >/dev/null 2>&1 &
echo "kexec loaded: the machine boots into the NixOS installer in 3 s"
