#!/usr/bin/env bash
# The main job, end to end on this machine: publish the bundled demo tree with our writer,
# serve it with nginx on 127.0.0.1, verify it with cvmfs-inspect, mount it with our cvmfs2
# (FUSE) and show its contents; then unmount and stop nginx.
# Usage: bash scripts/demo.sh            (demo tree in demo/tree)
#        SOURCE=/some/dir bash scripts/demo.sh   (publish another directory instead)
# Everything it creates lives in $DEMO_DIR (default /tmp/cvmfs-demo); the mount is
# removed and nginx stopped when the script ends (KEEP_MOUNTED=1 keeps both running).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

fqrn=${FQRN:-demo.cvmfs.local}
source_tree=${SOURCE:-$top/demo/tree}
work=${DEMO_DIR:-/tmp/cvmfs-demo}

bash scripts/install-deps.sh
echo "==> building (release)"
cargo build --release -q -p cvmfs-publish -p cvmfs-tools -p cvmfs-fuse
bin=$top/target/release

# A mount left by KEEP_MOUNTED=1 is removed first.
fusermount3 -u "$work/mnt/$fqrn" 2>/dev/null || true
[ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$work/keys" "$work/srv/cvmfs/$fqrn" "$work/nginx" "$work/mnt/$fqrn" "$work/cache"
chmod 755 "$work" "$work/srv" "$work/srv/cvmfs"

echo "==> keygen and publish $source_tree as $fqrn"
"$bin/cvmfs-publish" keygen --fqrn "$fqrn" --out "$work/keys"
"$bin/cvmfs-publish" publish --fqrn "$fqrn" --keys "$work/keys" \
    --storage "$work/srv/cvmfs/$fqrn" --source "$source_tree" --tag demo-1
chmod -R a+rX "$work/srv"

port=""
for candidate in $(seq 18080 18180); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "no free port on 127.0.0.1 between 18080 and 18180" >&2; exit 1; }

cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$port;
        root $work/srv;
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" &
nginx_pid=$!
mountpoint="$work/mnt/$fqrn"
cleanup() {
    if [ "${KEEP_MOUNTED:-0}" = 1 ]; then return; fi
    fusermount3 -u "$mountpoint" 2>/dev/null || true
    kill $nginx_pid 2>/dev/null || true
    wait $nginx_pid 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

url="http://127.0.0.1:$port/cvmfs/$fqrn"
inspect=("$bin/cvmfs-inspect" --repo "$url" --fqrn "$fqrn" --key "$work/keys/$fqrn.pub")
echo "==> served at $url; verifying the trust chain"
"${inspect[@]}" info
echo "==> listing (path, type, mode, size, mtime, sha256, symlink, xattrs, hardlink group)"
"${inspect[@]}" ls -R -l /
echo "==> cat /README.txt"
"${inspect[@]}" cat /README.txt
echo "==> verifying every object of the revision"
"${inspect[@]}" verify

echo "==> mounting with cvmfs2 on $mountpoint"
cat > "$work/client.conf" <<CONF
CVMFS_SERVER_URL=http://127.0.0.1:$port/cvmfs/@fqrn@
CVMFS_HTTP_PROXY=DIRECT
CVMFS_PUBLIC_KEY=$work/keys/$fqrn.pub
CVMFS_CACHE_BASE=$work/cache
CVMFS_QUOTA_LIMIT=1000
CONF
"$bin/cvmfs2" -o "config=$work/client.conf" "$fqrn" "$mountpoint"
echo "==> ls -la $mountpoint"
ls -la "$mountpoint"
echo "==> find $mountpoint"
find "$mountpoint" | sed "s|^$work/mnt||"
echo "==> cat $mountpoint/README.txt"
cat "$mountpoint/README.txt"
if [ -x "$mountpoint/software/current/bin/hello.sh" ]; then
    echo "==> run $mountpoint/software/current/bin/hello.sh"
    "$mountpoint/software/current/bin/hello.sh"
fi
echo "==> magic attributes"
for attr in fqrn revision root_hash host nclg ndownload; do
    printf '  user.%-10s %s\n' "$attr" "$(getfattr --absolute-names --only-values -n "user.$attr" "$mountpoint")"
done
echo "==> cvmfs_talk cache size"
"$bin/cvmfs_talk" -p "$work/cache/$fqrn/cvmfs_io.$fqrn" cache size
echo
if [ "${KEEP_MOUNTED:-0}" = 1 ]; then
    echo "Still mounted on $mountpoint (nginx pid $nginx_pid)."
    echo "Stop with: fusermount3 -u $mountpoint; kill $nginx_pid; rm -rf $work"
else
    echo "Done: $mountpoint is unmounted and nginx stopped; the published repository stays in"
    echo "$work/srv/cvmfs/$fqrn. Remove everything with: rm -rf $work"
fi
