# A minimal Debian 12 root file system for tests that install packages: source it.
# debian_root_unpack DIR: unpacks the cached base (mmdebstrap --variant=minbase bookworm, made
# once and shared with scripts/fresh-check) into DIR and mounts /proc and /dev there; the
# caller's EXIT trap must call debian_root_release DIR. Needs root and mmdebstrap.
DEBIAN_ROOT_CACHE=${FRESH_CHECK_CACHE:-/var/cache/portrelay-fresh-check}
DEBIAN_ROOT_TARBALL=$DEBIAN_ROOT_CACHE/bookworm-minbase.tar

debian_root_tarball() {
  [[ -f $DEBIAN_ROOT_TARBALL && -s $DEBIAN_ROOT_TARBALL ]] && return 0
  mkdir -p "$DEBIAN_ROOT_CACHE"
  # Same recipe as scripts/fresh-check, so both use one download.
  mmdebstrap --quiet --variant=minbase --format=tar --include=ca-certificates bookworm \
    "$DEBIAN_ROOT_CACHE/partial-$$.tar"
  mv "$DEBIAN_ROOT_CACHE/partial-$$.tar" "$DEBIAN_ROOT_TARBALL"
}

debian_root_unpack() {
  local root=$1
  debian_root_tarball
  tar -xf "$DEBIAN_ROOT_TARBALL" -C "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  [[ -s $root/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
}

debian_root_release() {
  local root=$1
  umount --lazy --recursive "$root/dev" 2>/dev/null || true
  umount --lazy "$root/proc" 2>/dev/null || true
  rm -rf --one-file-system "$root"
}
