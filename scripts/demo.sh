#!/usr/bin/env bash
# The main job, end to end on this machine: publish the bundled demo tree with our writer,
# serve it with nginx on 127.0.0.1, and open it with our client over HTTP.
# Usage: bash scripts/demo.sh            (demo tree in demo/tree)
#        SOURCE=/some/dir bash scripts/demo.sh   (publish another directory instead)
# Everything it creates lives in $DEMO_DIR (default /tmp/cvmfs-demo); nginx is stopped
# when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

fqrn=${FQRN:-demo.cvmfs.local}
source_tree=${SOURCE:-$top/demo/tree}
work=${DEMO_DIR:-/tmp/cvmfs-demo}

bash scripts/install-deps.sh
echo "==> building (release)"
cargo build --release -q -p cvmfs-publish -p cvmfs-tools
bin=$top/target/release

rm -rf "$work"
mkdir -p "$work/keys" "$work/srv/cvmfs/$fqrn" "$work/nginx"
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
trap 'kill $nginx_pid 2>/dev/null || true; wait $nginx_pid 2>/dev/null || true' EXIT
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
echo
echo "Done. nginx has been stopped; the published repository stays in $work/srv/cvmfs/$fqrn."
echo "Remove everything with: rm -rf $work"
