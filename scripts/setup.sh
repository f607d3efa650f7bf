#!/usr/bin/env bash
# Installs what Skiff needs on a Debian machine, and only what is missing: the container runtime
# (containerd, crun, runc), nftables, the CNI plugins, iproute2 and conntrack from Debian's packages,
# and the Go modules. Safe to run again.
set -euo pipefail

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have containerd || need_pkgs+=(containerd)
have runc || need_pkgs+=(runc)
# crun is what containers run with by default (about a quarter of runc's CPU per container); runc
# stays the fallback (--oci-runtime runc).
have crun || need_pkgs+=(crun)
have nft || need_pkgs+=(nftables)
have ip || need_pkgs+=(iproute2)
have conntrack || need_pkgs+=(conntrack)
have nsenter || need_pkgs+=(util-linux)
have docker-registry || need_pkgs+=(docker-registry)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need_pkgs+=(containernetworking-plugins)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq || echo "setup: apt-get update failed; trying the install with the cached package lists"
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

# Go: the project needs 1.26 or newer.
if ! have go && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
if ! have go; then
  echo "setup: Go 1.26 or newer is needed and was not found. Install it from https://go.dev/dl/ into /usr/local/go." >&2
  exit 1
fi
ver=$(go env GOVERSION | sed 's/^go//')
major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 26 ]; }; then
  echo "setup: Go $ver is too old; Skiff needs 1.26 or newer (https://go.dev/dl/)." >&2
  exit 1
fi

# Go modules of every module in the workspace.
for m in $(go list -m -f '{{.Dir}}' 2>/dev/null); do
  (cd "$m" && go mod download)
done
echo "setup: ok"
