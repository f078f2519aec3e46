#!/bin/sh
# Build a small busybox root filesystem directory for `orch image import`.
#
# Usage: examples/images/busybox.sh [OUTDIR]     (default: ./busybox-rootfs)
# Needs Debian's busybox-static (/bin/busybox, statically linked, so the
# rootfs needs no libc). Idempotent: rerunning refreshes the same tree and
# leaves what is already right untouched (mtimes included), so importing the
# tree again gives the same layer, and the same image layers.
# Prints the rootfs directory on stdout.
set -eu

OUT=${1:-./busybox-rootfs}
BUSYBOX=${BUSYBOX:-/bin/busybox}

if [ ! -x "$BUSYBOX" ]; then
    echo "busybox.sh: $BUSYBOX not found; install it with: apt-get install busybox-static" >&2
    exit 1
fi
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
    echo "busybox.sh: $BUSYBOX is not statically linked (need busybox-static)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Directories (tmp is world-writable with the sticky bit, like every Linux /tmp).
for d in bin sbin usr/bin usr/sbin etc root var var/log var/run www proc sys dev home/app; do
    mkdir -p "$OUT/$d"
done
mkdir -p "$OUT/tmp"
chmod 1777 "$OUT/tmp"
chmod 0700 "$OUT/root"

# The binary, then one symlink per applet (bin/ for all: the default PATH
# covers the other dirs, which exist for scripts that hard-code them).
cmp -s "$BUSYBOX" "$OUT/bin/busybox" 2>/dev/null || cp -f "$BUSYBOX" "$OUT/bin/busybox"
chmod 0755 "$OUT/bin/busybox"
for applet in $("$OUT/bin/busybox" --list); do
    [ "$applet" = busybox ] && continue
    [ -L "$OUT/bin/$applet" ] || ln -sfn busybox "$OUT/bin/$applet"
done

# put FILE: stdin becomes FILE, unless FILE already holds exactly that (the
# draft is written outside the tree: a file made and deleted in etc/ would
# change etc/'s mtime).
put() {
    draft=$(mktemp)
    cat >"$draft"
    if cmp -s "$draft" "$1"; then rm -f "$draft"; else cp "$draft" "$1" && rm -f "$draft"; fi
}

put "$OUT/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
PASSWD

put "$OUT/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
app:x:1000:
GROUP

chown 1000:1000 "$OUT/home/app" 2>/dev/null || true

put "$OUT/www/index.html" <<'HTML'
<!doctype html>
<html>
<head><title>orch</title></head>
<body><h1>hello from orch</h1></body>
</html>
HTML

echo "$OUT"
