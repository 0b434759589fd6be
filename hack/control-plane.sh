#!/usr/bin/env bash
# Builds (once) and caches the control-plane binaries the tests and the demo run:
# kube-apiserver, kube-controller-manager, etcd and kwok, from the Go module proxy.
# Prints the cache folder on stdout; everything else goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.6}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FLOTILLA_CONTROL_PLANE_CACHE:-$root/.cache/control-plane}"
dest="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$dest"

log() { echo "control-plane: $*" >&2; }

# A throw-away module per build, so nothing leaks into the project's go.mod.
scratch() { local d; d="$(mktemp -d)"; (cd "$d" && GOFLAGS=-mod=mod go mod init scratch >/dev/null 2>&1); echo "$d"; }

# Turns the `replace X => ./staging/...` lines of a go.mod into replaces by version.
replaces_from() { # $1 go.mod, $2 version for replaced modules
  awk -v v="$2" '
    /^replace \(/ {inblock=1; next}
    inblock && /^\)/ {inblock=0; next}
    inblock && /=> \.\.?\// {print "replace " $1 " => " $1 " " v; next}
  ' "$1"
}

build_kube() {
  [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kube-controller-manager" ] && return
  log "building kube-apiserver and kube-controller-manager v$K8S_VERSION (first time: a few minutes)"
  local d mod
  d="$(scratch)"
  mod="$(cd "$d" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | awk -F'"' '/"GoMod"/ {print $4}')"
  replaces_from "$mod" "v0.${K8S_VERSION#1.}" >>"$d/go.mod"
  (cd "$d" && GOFLAGS=-mod=mod go get "k8s.io/kubernetes@v$K8S_VERSION" >&2 &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$dest/" \
      -ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager >&2)
  rm -rf "$d"
}

build_etcd() {
  [ -x "$dest/etcd" ] && return
  log "building etcd v$ETCD_VERSION"
  local d mod
  d="$(scratch)"
  mod="$(cd "$d" && go mod download -json "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" | awk -F'"' '/"GoMod"/ {print $4}')"
  replaces_from "$mod" "v$ETCD_VERSION" >>"$d/go.mod"
  (cd "$d" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2 &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$dest/etcd" go.etcd.io/etcd/server/v3 >&2)
  rm -rf "$d"
}

build_kwok() {
  [ -x "$dest/kwok" ] && return
  log "building kwok v$KWOK_VERSION"
  GOBIN="$dest" CGO_ENABLED=0 GOFLAGS= go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2
}

link_kubectl() {
  [ -x "$dest/kubectl" ] && return
  local k
  k="$(command -v kubectl || true)"
  if [ -z "$k" ]; then log "kubectl is not on PATH; envtest needs it"; exit 1; fi
  ln -sf "$k" "$dest/kubectl"
}

build_etcd
build_kwok
build_kube
link_kubectl
ln -sfn "$dest" "$cache/current"
log "ready in $dest"
echo "$dest"
