#!/usr/bin/env bash
# uninstall.sh -- remove what install.sh deployed.
#
#   deploy/kubernetes/uninstall.sh                       # keeps the root key and the data
#   deploy/kubernetes/uninstall.sh --purge --yes         # deletes them too: every key is gone
#
# helm uninstall leaves, on purpose, the objects annotated
# helm.sh/resource-policy: keep: the root-key Secret (it seals every key),
# the MariaDB credentials and the data claim and volume. A later install.sh
# with the same namespace and release finds them and serves the same keys.
# --purge deletes them as well. A hostPath, local or NFS directory keeps its
# files even then (reclaim policy Retain): delete them by hand if you must.
set -euo pipefail

namespace=${namespace:-bigdl-kms} release=${release:-kms} purge=0 yes=0 delete_ns=0 timeout=${timeout:-5m}
usage() {
	cat <<EOF
Usage: $0 [--namespace NS] [--release NAME] [--purge [--yes]] [--delete-namespace]

  --namespace NS       namespace (default bigdl-kms; env namespace)
  --release NAME       Helm release (default kms; env release)
  --purge              also delete the root key, the MariaDB credentials and the
                       data claim and volume: EVERY KEY IS LOST. Asks for the
                       release name unless --yes is given.
  --yes                do not ask
  --delete-namespace   delete the namespace afterwards, if nothing else is left in it
EOF
}
die() { echo "uninstall.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--namespace | -n) [ $# -ge 2 ] || die "$1 needs a value"; namespace=$2; shift ;;
	--namespace=*) namespace=${1#*=} ;;
	--release) [ $# -ge 2 ] || die "$1 needs a value"; release=$2; shift ;;
	--release=*) release=${1#*=} ;;
	--purge) purge=1 ;;
	--yes | -y) yes=1 ;;
	--delete-namespace) delete_ns=1 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[[ $namespace =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "namespace: '$namespace' is not a valid name"
[[ $release =~ ^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$ ]] || die "release: '$release' is not a valid name"
for tool in helm kubectl; do command -v $tool >/dev/null || die "$tool is not on PATH"; done

sel="app.kubernetes.io/instance=$release"
if [ $purge = 1 ] && [ $yes = 0 ]; then
	[ -t 0 ] || die "--purge deletes every key; add --yes to confirm without a terminal"
	echo "--purge deletes the root key and the data of release $release in $namespace: every key it holds is lost."
	read -r -p "Type the release name to confirm: " answer
	[ "$answer" = "$release" ] || die "not confirmed; nothing deleted"
fi

if helm status "$release" --namespace "$namespace" >/dev/null 2>&1; then
	echo "== helm uninstall $release"
	helm uninstall "$release" --namespace "$namespace" --wait --timeout "$timeout"
	# helm waits for the controllers, not for their pods to drain and stop
	kubectl -n "$namespace" wait --for=delete pod -l "$sel" --timeout "$timeout" >/dev/null 2>&1 || true
else
	echo "release $release not found in namespace $namespace"
fi

if [ $purge = 1 ]; then
	echo "== purge: root key, credentials, data claim and volume"
	kubectl -n "$namespace" delete secret,persistentvolumeclaim -l "$sel" --ignore-not-found --wait=true
	# chart-made volumes: cluster-scoped, labelled with the release, bound
	# to a claim of this namespace
	for pv in $(kubectl get persistentvolume -l "$sel" \
		-o jsonpath="{range .items[?(@.spec.claimRef.namespace==\"$namespace\")]}{.metadata.name}{'\n'}{end}"); do
		kubectl delete persistentvolume "$pv" --wait=true
	done
else
	kept=$(kubectl -n "$namespace" get secret,persistentvolumeclaim -l "$sel" -o name 2>/dev/null || true)
	if [ -n "$kept" ]; then
		echo "kept (helm.sh/resource-policy: keep; --purge deletes them):"
		echo "$kept" | sed 's/^/  /'
	fi
fi

if [ $delete_ns = 1 ]; then
	left=$(kubectl -n "$namespace" get all,secret,configmap,persistentvolumeclaim -o name 2>/dev/null |
		grep -v -e '^configmap/kube-root-ca.crt$' || true)
	if [ -n "$left" ]; then
		echo "namespace $namespace not deleted: it still holds" >&2
		echo "$left" | sed 's/^/  /' >&2
		exit 1
	fi
	kubectl delete namespace "$namespace" --wait=true
fi
echo "done"
