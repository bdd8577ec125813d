#!/usr/bin/env bash
# install.sh -- deploy kms on Kubernetes with one command: the equivalent of
# BigDL's install-bigdl-kms.sh, with the same parameters, on the Helm chart
# in deploy/helm/kms. Run it again to upgrade; uninstall.sh removes it.
#
#   deploy/kubernetes/install.sh --nfs-server-ip 10.0.0.5 --nfs-path /srv/nfs/kms --kms-ip 10.0.0.100
#   nfsServerIP=10.0.0.5 nfsPath=/srv/nfs/kms kmsIP=10.0.0.100 deploy/kubernetes/install.sh
#
# Needs helm (3.8+) and kubectl on PATH, with a kubeconfig for the cluster.
set -euo pipefail

CHART=$(cd "$(dirname "$0")/../helm/kms" && pwd)
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")

usage() {
	cat <<EOF
Usage: $0 [options] [-- helm options]

Deploys kmsd (and, with NFS, a MariaDB store: the seed's topology) into a
namespace, waits until it is ready and prints how to reach it.

Parameters (flag, or environment variable as in install-bigdl-kms.sh):
  --nfs-server-ip IP    nfsServerIP   NFS server holding the data volume
  --nfs-path PATH       nfsPath       exported directory on that server (absolute)
  --kms-ip IP           kmsIP         address the Service answers on (externalIPs);
                                      an unused address routed to a node
  --port PORT           kmsPort       Service port (default 9876)
  --image REF           image         kms image (default ghcr.io/ppmlkms/kms:$APP_VERSION)
  --mariadb-image REF   mariadbImage  MariaDB image for --store mariadb

Other volumes, instead of NFS (one of them, or a claim on the default class):
  --host-path DIR       hostPath      directory on the node (single-node clusters);
                                      it must exist and belong to uid 65532
  --storage-class NAME  storageClass  dynamically provisioned claim
  --existing-claim NAME existingClaim claim made beforehand

  --store TYPE          store         sqlite or mariadb (default: mariadb on NFS, the
                                      seed's topology; sqlite otherwise)
  --replicas N          replicas      kmsd replicas (more than 1 needs --store mariadb)
  --root-key-secret NAME rootKeySecret Secret with the root key (key ROOT_KEY); default:
                                      kms-root-key if it exists and Helm does not own it
                                      (kmsctl secrets root-key), else one the chart generates
  --tls MODE            tls           ppml (Secrets ssl-keys/ssl-password of
                                      generate-keys.sh), secret:NAME (kubernetes.io/tls),
                                      or self-signed (default: ppml when ssl-keys exists)
  --namespace NS        namespace     default bigdl-kms
  --release NAME        release       Helm release name, default kms
  --pull-policy POLICY  pullPolicy    Always, IfNotPresent or Never
  --timeout DURATION    timeout       wait this long for readiness (default 5m)
  --dry-run                           render and validate against the cluster; change nothing
  -h, --help

Anything after -- goes to helm (for example -f my-values.yaml or --set k=v).
EOF
}

die() { echo "install.sh: $*" >&2; exit 2; }

is_ipv4() {
	local IFS=. o
	[[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
	for o in $1; do ((10#$o <= 255)) || return 1; done
}
is_ip() { is_ipv4 "$1" || [[ $1 =~ ^[0-9a-fA-F:]*:[0-9a-fA-F:]*(:[0-9]{1,3}(\.[0-9]{1,3}){3})?$ && ${#1} -ge 2 && ${#1} -le 45 ]]; }
check_ip() { is_ip "$2" || die "$1: '$2' is not an IPv4 or IPv6 address"; }
check_abs_path() {
	[[ $2 == /* ]] || die "$1: '$2' must be an absolute path (start with /)"
	[[ $2 =~ ^/[A-Za-z0-9._/@+=,-]*$ ]] || die "$1: '$2' may contain only letters, digits, / and ._@+=,-"
	[[ /$2/ != */../* ]] || die "$1: '$2' must not contain .."
}
# docker reference: [host[:port]/]path[:tag][@sha256:digest], lower-case path
image_re='^([a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$'
check_image() { [[ $2 =~ $image_re ]] || die "$1: '$2' is not an image reference like registry.example/kms/kms:0.1.0"; }
check_name() { [[ $2 =~ ^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$ ]] || die "$1: '$2' is not a valid name (lower-case letters, digits, -)"; }

# defaults from the seed's environment variables
nfs_server=${nfsServerIP:-} nfs_path=${nfsPath:-} kms_ip=${kmsIP:-} image=${image:-}
mariadb_image=${mariadbImage:-} host_path=${hostPath:-} storage_class=${storageClass:-}
existing_claim=${existingClaim:-} store=${store:-} replicas=${replicas:-} tls=${tls:-}
root_key_secret=${rootKeySecret:-} port=${kmsPort:-}
namespace=${namespace:-bigdl-kms} release=${release:-kms} pull_policy=${pullPolicy:-}
timeout=${timeout:-5m} dry_run=0
helm_args=()

while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	-h | --help) usage; exit 0 ;;
	--dry-run) dry_run=1; shift; continue ;;
	--) shift; helm_args=("$@"); break ;;
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
	--* | -n) [ $# -ge 2 ] || die "$opt needs a value" ;;
	*) die "unexpected argument '$opt' (see --help)" ;;
	esac
	case $opt in
	--nfs-server-ip | --nfsServerIP) nfs_server=$2 ;;
	--nfs-path | --nfsPath) nfs_path=$2 ;;
	--kms-ip | --kmsIP) kms_ip=$2 ;;
	--image) image=$2 ;;
	--port) port=$2 ;;
	--mariadb-image) mariadb_image=$2 ;;
	--host-path) host_path=$2 ;;
	--storage-class) storage_class=$2 ;;
	--existing-claim) existing_claim=$2 ;;
	--store) store=$2 ;;
	--replicas) replicas=$2 ;;
	--tls) tls=$2 ;;
	--root-key-secret) root_key_secret=$2 ;;
	--namespace | -n) namespace=$2 ;;
	--release) release=$2 ;;
	--pull-policy) pull_policy=$2 ;;
	--timeout) timeout=$2 ;;
	*) die "unknown option $opt (see --help)" ;;
	esac
	shift 2
done

# ---- validate
for tool in helm kubectl; do
	command -v $tool >/dev/null || die "$tool is not on PATH"
done
[ -n "$nfs_server" ] && check_ip "nfsServerIP" "$nfs_server"
[ -n "$nfs_path" ] && check_abs_path "nfsPath" "$nfs_path"
[ -n "$nfs_server" ] && [ -z "$nfs_path" ] && die "nfsServerIP needs nfsPath"
[ -z "$nfs_server" ] && [ -n "$nfs_path" ] && die "nfsPath needs nfsServerIP"
[ -n "$kms_ip" ] && check_ip "kmsIP" "$kms_ip"
[ -n "$host_path" ] && check_abs_path "hostPath" "$host_path"
if [ -n "$port" ]; then
	[[ $port =~ ^[1-9][0-9]{0,4}$ ]] && [ "$port" -le 65535 ] || die "port: '$port' must be a TCP port number (1-65535)"
fi
[ -n "$image" ] && check_image "image" "$image"
[ -n "$mariadb_image" ] && check_image "mariadbImage" "$mariadb_image"
[ -n "$storage_class" ] && check_name "storageClass" "$storage_class"
[ -n "$existing_claim" ] && check_name "existingClaim" "$existing_claim"
[ -n "$root_key_secret" ] && check_name "rootKeySecret" "$root_key_secret"
check_name "namespace" "$namespace"
check_name "release" "$release"
n=0
for v in "$nfs_server" "$host_path" "$storage_class" "$existing_claim"; do [ -n "$v" ] && n=$((n + 1)); done
[ $n -le 1 ] || die "choose one volume: --nfs-server-ip/--nfs-path, --host-path, --storage-class or --existing-claim"
if [ -z "$store" ]; then
	store=sqlite
	[ -n "$nfs_server" ] && store=mariadb # SQLite's locks are not safe on NFS; the seed put MySQL there
fi
case $store in sqlite | mariadb) ;; *) die "store: '$store' must be sqlite or mariadb (an external database: -- --set store.type=external ...)" ;; esac
if [ -n "$replicas" ]; then
	[[ $replicas =~ ^[1-9][0-9]?$ ]] || die "replicas: '$replicas' must be a number from 1 to 99"
	[ "$replicas" -eq 1 ] || [ $store != sqlite ] || die "replicas=$replicas needs --store mariadb: SQLite is one file that one kmsd writes"
fi
case $pull_policy in "" | Always | IfNotPresent | Never) ;; *) die "pullPolicy: '$pull_policy' must be Always, IfNotPresent or Never" ;; esac
[[ $timeout =~ ^[0-9]+(s|m|h)$ ]] || die "timeout: '$timeout' must look like 90s, 5m or 1h"

kubectl version >/dev/null 2>&1 || die "cannot reach the cluster with kubectl (check KUBECONFIG)"
ns_exists=0
kubectl get namespace "$namespace" >/dev/null 2>&1 && ns_exists=1
if [ -z "$tls" ]; then
	tls=self-signed
	if [ $ns_exists = 1 ] && kubectl -n "$namespace" get secret ssl-keys >/dev/null 2>&1; then tls=ppml; fi
fi
case $tls in
self-signed) set_tls=(--set tls.mode=selfSigned) ;;
ppml)
	kubectl -n "$namespace" get secret ssl-keys >/dev/null 2>&1 ||
		die "tls ppml: Secret ssl-keys not found in namespace $namespace (kubectl -n $namespace apply -f keys/keys.yaml)"
	set_tls=(--set tls.mode=ppml) ;;
secret:?*)
	check_name "tls secret" "${tls#secret:}"
	set_tls=(--set tls.mode=secret --set-string "tls.secretName=${tls#secret:}") ;;
*) die "tls: '$tls' must be self-signed, ppml or secret:NAME" ;;
esac

if [ -z "$root_key_secret" ] && [ $ns_exists = 1 ] && kubectl -n "$namespace" get secret kms-root-key >/dev/null 2>&1 &&
	[ -z "$(kubectl -n "$namespace" get secret kms-root-key -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}')" ]; then
	root_key_secret=kms-root-key # made by kmsctl secrets root-key or by hand
fi
if [ -n "$root_key_secret" ]; then
	kubectl -n "$namespace" get secret "$root_key_secret" >/dev/null 2>&1 ||
		die "rootKeySecret: Secret $root_key_secret not found in namespace $namespace"
	echo "root key: Secret $root_key_secret"
fi

# ---- helm values
set_args=(--set-string "store.type=$store" "${set_tls[@]}")
[ -n "$root_key_secret" ] && set_args+=(--set-string "rootKey.existingSecret=$root_key_secret")
if [ -n "$image" ]; then
	ref=${image%@*} digest=
	[[ $image == *@* ]] && digest=${image#*@}
	repo=$ref tag=
	if [[ ${ref##*/} == *:* ]]; then repo=${ref%:*} tag=${ref##*:}; fi
	set_args+=(--set-string "image.repository=$repo" --set-string "image.tag=$tag" --set-string "image.digest=$digest")
fi
if [ -n "$mariadb_image" ]; then
	ref=${mariadb_image%@*} digest=
	[[ $mariadb_image == *@* ]] && digest=${mariadb_image#*@}
	repo=$ref tag=
	if [[ ${ref##*/} == *:* ]]; then repo=${ref%:*} tag=${ref##*:}; fi
	set_args+=(--set-string "mariadb.image.repository=$repo" --set-string "mariadb.image.tag=$tag" --set-string "mariadb.image.digest=$digest")
fi
[ -n "$pull_policy" ] && set_args+=(--set-string "image.pullPolicy=$pull_policy" --set-string "mariadb.image.pullPolicy=$pull_policy")
[ -n "$nfs_server" ] && set_args+=(--set-string "persistence.nfs.server=$nfs_server" --set-string "persistence.nfs.path=$nfs_path")
[ -n "$host_path" ] && set_args+=(--set-string "persistence.hostPath.path=$host_path")
[ -n "$storage_class" ] && set_args+=(--set-string "persistence.storageClass=$storage_class")
[ -n "$existing_claim" ] && set_args+=(--set-string "persistence.existingClaim=$existing_claim")
[ -n "$kms_ip" ] && set_args+=(--set-string "service.externalIPs[0]=$kms_ip")
[ -n "$replicas" ] && set_args+=(--set "replicaCount=$replicas")
[ -n "$port" ] && set_args+=(--set "service.port=$port")

if [ $dry_run = 1 ]; then
	echo "== dry run: helm renders, the API server validates; nothing changes"
	exec helm upgrade --install "$release" "$CHART" --namespace "$namespace" --create-namespace \
		--dry-run=server "${set_args[@]}" "${helm_args[@]}"
fi

# ---- install
t0=$SECONDS
if [ $ns_exists = 0 ]; then
	# kms pods meet the "restricted" Pod Security Standard: enforce it.
	kubectl create namespace "$namespace" >/dev/null
	kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=restricted >/dev/null
	echo "created namespace $namespace (pod security: restricted)"
fi
echo "== helm upgrade --install $release (store: $store, TLS: $tls, namespace: $namespace)"
helm upgrade --install "$release" "$CHART" --namespace "$namespace" \
	--wait --timeout "$timeout" "${set_args[@]}" "${helm_args[@]}" >/dev/null
sel="app.kubernetes.io/instance=$release"
for obj in $(kubectl -n "$namespace" get statefulset,deployment -l "$sel" -o name); do
	kubectl -n "$namespace" rollout status "$obj" --timeout "$timeout"
done
echo "ready in $((SECONDS - t0))s"
echo
kubectl -n "$namespace" get all -l "$sel"

# ---- next steps (the seed's curl sequence)
svc=$(kubectl -n "$namespace" get service -l "$sel,app.kubernetes.io/component=server" -o jsonpath='{.items[0].metadata.name}')
port=$(kubectl -n "$namespace" get service "$svc" -o jsonpath='{.spec.ports[0].port}')
if [ -n "$kms_ip" ]; then
	addr=$kms_ip
	[[ $addr == *:* ]] && addr="[$addr]"
	addr=$addr:$port
else
	node_port=$(kubectl -n "$namespace" get service "$svc" -o jsonpath='{.spec.ports[0].nodePort}')
	node_ip=$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
	addr=$node_ip:$node_port
fi
fullname=$release
[[ $release == *kms* ]] || fullname=$release-kms
rk_secret=${root_key_secret:-$fullname-root-key}
cat <<EOF

kmsd answers at https://$addr/ (-k: accept its certificate; with the ssl-keys
certificate use --cacert server.crt instead). Try the BigDL sequence:

  curl -k "https://$addr/"
  curl -k -X POST "https://$addr/user/<userName>?token=<userToken>"
  curl -k -X POST "https://$addr/primaryKey/<primaryKeyName>?user=<userName>&&token=<userToken>"
  curl -k -X POST "https://$addr/dataKey/<dataKeyName>?user=<userName>&&token=<userToken>&&primaryKeyName=<primaryKeyName>"
  curl -k -X GET  "https://$addr/dataKey/<dataKeyName>?user=<userName>&&token=<userToken>&&primaryKeyName=<primaryKeyName>"

Back up the root key (it seals every key; uninstall keeps it):
  kubectl -n $namespace get secret $rk_secret -o jsonpath='{.data.ROOT_KEY}' | base64 -d
Upgrade: run this script again. Remove: $(dirname "$0")/uninstall.sh --namespace $namespace --release $release
EOF
