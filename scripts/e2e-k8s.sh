#!/usr/bin/env bash
# e2e-k8s.sh -- kms on a real Kubernetes cluster (the sandbox of
# ../shared/k8s-sandbox: kube-apiserver, kubelet, containerd, kube-proxy on
# this machine), from image build to uninstall:
#
#   1. cluster    up.sh (first run builds Kubernetes, ~16 min; then ~20 s)
#   2. images     scripts/build-image.sh (kms twice: v1 and v2 for the upgrade,
#                 MariaDB), the archive test, ctr import
#   3. static     helm lint, every values combination of deploy/helm/kms/ci
#                 rendered and accepted by the API server (kubectl apply
#                 --dry-run=server; the NFS variants are validated this way,
#                 NFS cannot be mounted here), invalid combinations refused,
#                 plain manifests up to date and accepted, install.sh --dry-run
#   4. sqlite     SQLite on a hostPath volume, TLS from the PPML ssl-keys and
#                 root key made by `kmsctl secrets`, via install.sh: the seed's
#                 curl sequence on NodePort and kmsIP, the served certificate
#                 is keystore.pkcs12's (password from output.bin + key.txt),
#                 helm test, a pod deleted under load (no acknowledged key
#                 lost), a rolling upgrade under load (no failed request),
#                 uninstall + reinstall keeps every key, purge leaves nothing
#   5. mariadb    bundled MariaDB, kubernetes.io/tls Secret: curl sequence,
#                 kmsd and MariaDB pods deleted under load, nothing lost
#   6. replicas   3 kmsd replicas on the bundled MariaDB: curl sequence, the
#                 serving pod deleted under load (nothing lost; failures are
#                 counted and shown), a rolling upgrade under load without a
#                 single failed request
#
# Exit status: 0 all passed (or SKIP: not root / no cgroups), 1 a check
# failed. The summary at the end lists every step with its time.
# Environment: K8S_SANDBOX (directory of up.sh), K8S_DIR, E2E_KEEP=1 (leave
# the failed namespace for debugging), E2E_MODES ("sqlite mariadb replicas").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$SECONDS
log() { printf '[e2e-k8s +%4ss] %s\n' $((SECONDS - T0)) "$*"; }

# ---- can this machine run the cluster at all?
skip() { echo "SKIP e2e-k8s: $*"; echo "=== e2e-k8s: SKIPPED ($*) ==="; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root to run kubelet and containerd"
grep -qw cgroup2 /proc/filesystems 2>/dev/null || grep -qw cgroup /proc/filesystems 2>/dev/null || skip "the kernel has no cgroups"
[ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] || skip "no cgroup hierarchy mounted at /sys/fs/cgroup"

SANDBOX=${K8S_SANDBOX:-$ROOT/../shared/k8s-sandbox}
P=${K8S_DIR:-/var/lib/k8s-sandbox}
MODES=${E2E_MODES:-sqlite mariadb replicas}
export PATH=$P/bin:$PATH:/usr/local/go/bin:/usr/sbin:/sbin KUBECONFIG=$P/pki/admin.kubeconfig
WORK=$(mktemp -d /tmp/kms-e2e.XXXXXX)
CTR="ctr --address $P/run/containerd/containerd.sock -n k8s.io"
RUN_ID=$(date +%s)
IMAGE_REPO=ghcr.io/ppmlkms/kms
IMAGE_V1=$IMAGE_REPO:e2e-$RUN_ID-v1
IMAGE_V2=$IMAGE_REPO:e2e-$RUN_ID-v2
MARIADB_IMAGE=ghcr.io/ppmlkms/kms-mariadb:e2e-$RUN_ID
TOKEN=e2e-token-$RUN_ID
KMS_PORT=
log "work directory $WORK"

# ---- steps and summary
declare -a SUMMARY=()
FAILED=0
# step NAME FUNCTION: runs FUNCTION, records PASS/FAIL and its time
step() {
	local name=$1 s=$SECONDS rc
	log "---- $name"
	"${@:2}"
	rc=$?
	local d=$((SECONDS - s))
	if [ $rc = 0 ]; then
		SUMMARY+=("$(printf 'PASS %-58s %4ss' "$name" $d)")
	else
		SUMMARY+=("$(printf 'FAIL %-58s %4ss' "$name" $d)")
		FAILED=1
		log "FAILED: $name"
	fi
	return $rc
}
summary() {
	echo
	echo "=== e2e-k8s summary (total $((SECONDS - T0))s; logs in $WORK) ==="
	printf '%s\n' "${SUMMARY[@]}"
	if [ $FAILED = 0 ]; then echo "=== e2e-k8s: PASS ==="; else echo "=== e2e-k8s: FAIL ==="; fi
}
fail() { log "ERROR: $*"; return 1; }
# retry N CMD...: run CMD up to N times, one second apart
retry() { local n=$1 i; shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 1; done; return 1; }

# ---- 1. cluster
cluster_up() {
	"$SANDBOX/up.sh" >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; return 1; }
	# up.sh rewrites kube-proxy's configuration file even when kube-proxy is
	# running, and kube-proxy exits when that file changes: Services then
	# stop working. up.sh restarts a kube-proxy that is not running.
	sleep 3
	if ! kube_proxy_alive; then
		log "kube-proxy exited after up.sh rewrote its configuration (up.sh race); running up.sh again"
		"$SANDBOX/up.sh" >>"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; return 1; }
		sleep 3
		kube_proxy_alive || fail "kube-proxy is not running" || return 1
	fi
	kubectl get nodes -o wide || return 1
	NODE_IP=$(kubectl get node -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
	NODE_NAME=$(kubectl get node -o jsonpath='{.items[0].metadata.name}')
	[ -n "$NODE_IP" ] || fail "no node address"
	log "node $NODE_NAME at $NODE_IP (NodePorts and kmsIP)"
	# kube-proxy serves kmsIP:PORT by NAT, but a connection that the host
	# itself answered (a process listening on *:PORT, before the Service's
	# rules existed) leaves a conntrack entry that a later connection from
	# the same source port reuses, past the NAT: requests would reach that
	# process instead of kmsd. Use the seed's 9876 only if it is free here.
	local p
	for p in 9876 19876 29876; do
		if [ -z "$(ss -Htln "sport = :$p")" ]; then KMS_PORT=$p; break; fi
		log "WARNING: port $p of this machine is taken by $(ss -Htlnp "sport = :$p" | grep -o 'users:.*' | head -1)"
	done
	[ -n "$KMS_PORT" ] || fail "no free port for the Service" || return 1
	log "the Service listens on kmsIP:$KMS_PORT"
}

kube_proxy_alive() { [ -f "$P/run/kube-proxy.pid" ] && kill -0 "$(cat "$P/run/kube-proxy.pid")" 2>/dev/null; }

# ---- 2. images
build_images() {
	local out=$WORK/images
	mkdir -p "$out"
	OUT_DIR=$out IMAGE=$IMAGE_V1 VERSION=e2e-v1 MARIADB_IMAGE=$MARIADB_IMAGE scripts/build-image.sh all || return 1
	mv "$out/kms-image.tar" "$out/kms-v1.tar"
	OUT_DIR=$out IMAGE=$IMAGE_V2 VERSION=e2e-v2 scripts/build-image.sh kms || return 1
	mv "$out/kms-image.tar" "$out/kms-v2.tar"
	KMS_IMAGE_ARCHIVE=$out/kms-v1.tar KMS_MARIADB_IMAGE_ARCHIVE=$out/kms-mariadb-image.tar \
		go test -count=1 -v ./deploy/image/ >"$WORK/imagetest.out" 2>&1
	local rc=$?
	grep -E '^(---|ok|FAIL|\s+archive_test)' "$WORK/imagetest.out" | sed 's/^/  /'
	[ $rc = 0 ] || return 1
	local a
	for a in kms-v1 kms-v2 kms-mariadb-image; do
		$CTR images import "$out/$a.tar" || return 1
	done
}

# ---- 3. static checks against the API server
DRY_NS=kms-e2e-dryrun
static_checks() {
	local chart=deploy/helm/kms f ok=0
	helm lint "$chart" || return 1
	kubectl create namespace $DRY_NS --dry-run=client -o yaml | kubectl apply -f - >/dev/null || return 1
	for f in "$chart"/ci/*-values.yaml; do
		helm lint "$chart" -f "$f" --quiet >"$WORK/lint.out" 2>&1 || { cat "$WORK/lint.out"; fail "helm lint $f"; ok=1; continue; }
		if helm template kms "$chart" -n $DRY_NS -f "$f" --kube-version "$(kube_version)" >"$WORK/render.yaml" &&
			kubectl apply --dry-run=server -f "$WORK/render.yaml" >"$WORK/apply.out" 2>&1; then
			echo "  accepted by the API server: $(basename "$f") ($(grep -c '^kind:' "$WORK/render.yaml") objects)"
		else
			cat "$WORK/apply.out"; fail "$(basename "$f") rejected"; ok=1
		fi
	done
	# combinations the chart must refuse, with the message it must give
	local bad
	while IFS='|' read -r bad want; do
		# shellcheck disable=SC2086
		if helm template kms "$chart" --kube-version "$(kube_version)" $bad >"$WORK/bad.out" 2>&1; then
			fail "helm template accepted: $bad"; ok=1
		elif ! grep -q -- "$want" "$WORK/bad.out"; then
			cat "$WORK/bad.out"; fail "wrong message for: $bad"; ok=1
		else
			echo "  refused as expected: $bad"
		fi
	done <<-'EOF'
		--set replicaCount=3|needs a shared SQL store
		--set store.type=external|needs store.external.existingSecret
		--set persistence.nfs.server=192.0.2.20|needs both server
		--set persistence.hostPath.path=/a --set persistence.storageClass=x --set persistence.existingClaim=c|choose one of
		--set persistence.local.path=/mnt/x|needs persistence.local.nodeName
		--set tls.mode=secret|needs tls.secretName
		--set persistence.nfs.server=192.0.2.20 --set persistence.nfs.path=/x --set strategy.type=RollingUpdate|cannot use a RollingUpdate
		--set service.externalIPs[0]=not-an-ip|externalIPs
		--set persistence.hostPath.path=relative|does not match pattern
	EOF
	# the plain manifests: up to date, and accepted once the seed's variables are set
	deploy/kubernetes/render.sh --check || ok=1
	for f in deploy/kubernetes/manifests/*.yaml; do
		nfsServerIP=192.0.2.20 nfsPath=/srv/nfs/kms kmsIP=192.0.2.10 \
			envsubst '${nfsServerIP} ${nfsPath} ${kmsIP}' <"$f" |
			sed "s/namespace: bigdl-kms/namespace: $DRY_NS/; s/^  name: bigdl-kms$/  name: $DRY_NS/" >"$WORK/plain.yaml"
		if kubectl apply --dry-run=server -f "$WORK/plain.yaml" >"$WORK/apply.out" 2>&1; then
			echo "  accepted by the API server: $f"
		else
			cat "$WORK/apply.out"; fail "$f rejected"; ok=1
		fi
	done
	# install.sh with the seed's parameters, server-side dry run (NFS + kmsIP)
	if nfsServerIP=192.0.2.20 nfsPath=/srv/nfs/kms kmsIP=192.0.2.10 deploy/kubernetes/install.sh \
		--namespace $DRY_NS --release seed --dry-run >"$WORK/install-dry.out" 2>&1; then
		echo "  install.sh --dry-run (NFS, MariaDB, kmsIP): $(grep -c '^kind:' "$WORK/install-dry.out") objects rendered"
	else
		tail -20 "$WORK/install-dry.out"; fail "install.sh --dry-run"; ok=1
	fi
	kubectl delete namespace $DRY_NS --wait=true --timeout=120s >/dev/null
	return $ok
}
kube_version() { kubectl version -o json | sed -n 's/.*"gitVersion": *"v\([0-9.]*\)".*/\1/p' | tail -1; }

# ---- helpers for the modes
NS= RELEASE=kms
svc_nodeport() { kubectl -n "$NS" get svc "$RELEASE" -o jsonpath='{.spec.ports[0].nodePort}'; }
urls() { echo "https://$NODE_IP:$(svc_nodeport),https://$NODE_IP:$KMS_PORT"; }

# seed_curls BASEURL CURLOPT...: the seed README's sequence, answers checked
seed_curls() {
	local base=$1 u=seed-$RANDOM pk=pk1 dk=dk1 tok=t-$RANDOM out
	shift
	c() { curl -sS --fail-with-body --max-time 10 "$@"; }
	# kube-proxy programs a new Service or endpoint within seconds of readiness
	retry 30 c -o /dev/null "$@" "$base/healthz" 2>/dev/null || { fail "$base does not answer"; return 1; }
	out=$(c "$@" "$base/") && [[ $out == "welcome to BigDL KMS Frontend"* ]] || { fail "GET / on $base: $out"; return 1; }
	out=$(c "$@" -X POST "$base/user/$u?token=$tok") && [ "$out" = "user [$u] is created successfully!" ] || { fail "create user: $out"; return 1; }
	out=$(c "$@" -X POST "$base/primaryKey/$pk?user=$u&&token=$tok") && [ "$out" = "primaryKey [$pk] is generated successfully!" ] || { fail "primary key: $out"; return 1; }
	out=$(c "$@" -X POST "$base/dataKey/$dk?user=$u&&token=$tok&&primaryKeyName=$pk") && [ "$out" = "dataKey [$dk] is generated successfully!" ] || { fail "data key: $out"; return 1; }
	out=$(c "$@" -X GET "$base/dataKey/$dk?user=$u&&token=$tok&&primaryKeyName=$pk") && [[ $out =~ ^[A-Za-z0-9+/]{22}==$ ]] || { fail "get data key: $out"; return 1; }
	echo "  seed curl sequence OK on $base ${*:+($*)}: data key ${out:0:2}********${out: -4}"
}
curl_sequence() {
	seed_curls "https://$NODE_IP:$(svc_nodeport)" -k || return 1
	seed_curls "https://$NODE_IP:$KMS_PORT" "$@"
}

KMSLOAD=$WORK/kmsload KMSCTL=$WORK/kmsctl
build_tools() { go build -o "$KMSLOAD" ./deploy/kubernetes/e2e/kmsload && go build -o "$KMSCTL" ./cmd/kmsctl; }

# under_load NAME MAXFAIL CMD...: runs the load generator while CMD
# disrupts the release, waits until the Deployment is back to its replicas
# with no pod left terminating, then checks the failures and that every
# acknowledged key is there with its value.
under_load() {
	local name=$1 maxfail=$2 rc=0
	shift 2
	rm -f "$WORK/stop"
	"$KMSLOAD" -url "$(urls)" -token "$TOKEN" -setup >/dev/null || return 1
	"$KMSLOAD" -url "$(urls)" -token "$TOKEN" -prefix "$name-$RANDOM" -duration 300s -stop-file "$WORK/stop" \
		-acked "$WORK/acked-$NS" -max-failures "$maxfail" >"$WORK/load-$NS-$name.out" 2>&1 &
	local lp=$!
	# every server pod's log, including the pods that the test deletes
	kubectl -n "$NS" logs -f -l app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=server \
		--prefix --max-log-requests 20 --tail=-1 >"$WORK/podlogs-$NS-$name.txt" 2>&1 &
	local logs=$!
	sleep 3
	"$@" || rc=1
	settle || rc=1
	sleep 3
	touch "$WORK/stop"
	wait $lp || rc=1
	sed 's/^/  /' "$WORK/load-$NS-$name.out"
	"$KMSLOAD" -url "$(urls)" -token "$TOKEN" -verify "$WORK/acked-$NS" >"$WORK/verify.out" 2>&1 || rc=1
	head -20 "$WORK/verify.out" | sed 's/^/  /'
	kill "$logs" 2>/dev/null
	# the follower above misses pods created meanwhile
	kubectl -n "$NS" logs -l app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=server --prefix \
		--tail=-1 --max-log-requests 20 >>"$WORK/podlogs-$NS-$name.txt" 2>&1
	return $rc
}
# settle: the Deployment has its replicas ready and no other pod remains
settle() {
	local want i n all
	want=$(kubectl -n "$NS" get deploy "$RELEASE" -o jsonpath='{.spec.replicas}')
	kubectl -n "$NS" rollout status deploy/"$RELEASE" --timeout=180s >/dev/null || return 1
	for ((i = 0; i < 180; i++)); do
		n=$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=server --no-headers 2>/dev/null |
			awk '$2 ~ /^1\/1$/ && $3 == "Running"' | wc -l)
		all=$(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=server --no-headers 2>/dev/null | wc -l)
		[ "$n" = "$want" ] && [ "$all" = "$want" ] && return 0
		sleep 1
	done
	fail "pods did not settle to $want"
}
delete_one_pod() { # COMPONENT: the pod that serves the load (sessionAffinity sends a client to one pod)
	local pod p n
	pod=$(for p in $(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component="$1" -o name); do
		n=$(kubectl -n "$NS" logs "$p" --since=3s 2>/dev/null | wc -l)
		echo "$n ${p#pod/}"
	done | sort -rn | head -1 | cut -d' ' -f2)
	log "deleting pod $pod under load"
	kubectl -n "$NS" delete pod "$pod" --wait=false >/dev/null || return 1
	kubectl -n "$NS" wait --for=delete pod/"$pod" --timeout=120s >/dev/null || return 1
	if [ "$1" = mariadb ]; then
		kubectl -n "$NS" rollout status statefulset/"$RELEASE"-mariadb --timeout=180s >/dev/null || return 1
	fi
}

# kms_install ARGS...: install.sh with the e2e images and the node as kmsIP
kms_install() {
	deploy/kubernetes/install.sh --namespace "$NS" --release "$RELEASE" --kms-ip "$NODE_IP" --port "$KMS_PORT" \
		--image "$IMAGE_V1" --mariadb-image "$MARIADB_IMAGE" --pull-policy Never --timeout 5m "$@" \
		>"$WORK/install-$NS.out" 2>&1 || { tail -30 "$WORK/install-$NS.out"; return 1; }
	grep -E '^(== |ready in|created namespace)' "$WORK/install-$NS.out" | sed 's/^/  /'
	kubectl -n "$NS" get all -l app.kubernetes.io/instance=$RELEASE | sed 's/^/  /'
}
helm_test() { helm test "$RELEASE" -n "$NS" --timeout 2m >"$WORK/helmtest.out" 2>&1 || { cat "$WORK/helmtest.out"; return 1; }; echo "  helm test: $(grep -E 'Phase' "$WORK/helmtest.out" | xargs)"; }

# pod_security: the running pods are what the chart promises
pod_security() {
	local pod
	for pod in $(kubectl -n "$NS" get pods -l app.kubernetes.io/instance=$RELEASE -o name); do
		local s
		s=$(kubectl -n "$NS" get "$pod" -o jsonpath='{.spec.securityContext.runAsUser}/{.spec.securityContext.runAsNonRoot}/{.spec.securityContext.seccompProfile.type}/{.spec.containers[0].securityContext.readOnlyRootFilesystem}/{.spec.containers[0].securityContext.capabilities.drop[0]}/{.spec.containers[0].securityContext.allowPrivilegeEscalation}')
		[ "$s" = "65532/true/RuntimeDefault/true/ALL/false" ] || { fail "$pod security context $s"; return 1; }
	done
	[ "$(kubectl get ns "$NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" = restricted ] ||
		{ fail "namespace $NS does not enforce the restricted Pod Security Standard"; return 1; }
	echo "  pods run as 65532, read-only root, no capabilities, seccomp RuntimeDefault; namespace enforces 'restricted'"
}

# uninstall_clean: purge, then nothing of the release is left
uninstall_clean() {
	deploy/kubernetes/uninstall.sh --namespace "$NS" --release "$RELEASE" --purge --yes >"$WORK/uninstall.out" 2>&1 ||
		{ cat "$WORK/uninstall.out"; return 1; }
	# the test's own Secrets (ssl-keys, ssl-password, kms-tls) are not the chart's
	kubectl -n "$NS" delete secret -l kms-e2e-fixture=true >/dev/null || return 1
	local left
	left=$(kubectl -n "$NS" get all,secret,configmap,pvc,pdb,networkpolicy,serviceaccount,endpointslice -o name 2>/dev/null |
		grep -v -e '^configmap/kube-root-ca.crt$' -e '^serviceaccount/default$')
	left+=$(kubectl get pv -l app.kubernetes.io/instance=$RELEASE -o name)
	[ -z "$left" ] || { fail "left after uninstall: $left"; return 1; }
	kubectl delete namespace "$NS" --wait=true --timeout=120s >/dev/null || return 1
	rm -rf "$HOSTPATH"
	echo "  uninstalled; nothing left in $NS; namespace and volume directory deleted"
}

# new_namespace NS: fresh namespace enforcing the restricted standard,
# and a hostPath directory owned by kmsd's uid for the data volume
new_namespace() {
	NS=$1
	kubectl delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
	kubectl get pv -l app.kubernetes.io/instance=$RELEASE -o name | xargs -r kubectl delete >/dev/null
	kubectl create namespace "$NS" >/dev/null && kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null || return 1
	HOSTPATH=$P/pv/$NS
	rm -rf "$HOSTPATH" && install -d -o 65532 -g 65532 -m 0700 "$HOSTPATH"
	rm -f "$WORK/acked-$NS"
}
diagnose() {
	{
		echo "==== diagnostics for $NS"
		kubectl -n "$NS" get all,pvc,secret,events -o wide
		kubectl -n "$NS" describe pods
		for p in $(kubectl -n "$NS" get pods -o name); do echo "---- logs $p"; kubectl -n "$NS" logs "$p" --all-containers --tail=300; done
	} >"$WORK/diagnose-$NS.txt" 2>&1
	log "diagnostics in $WORK/diagnose-$NS.txt"
}
end_mode() { # keep the namespace of a failed mode when E2E_KEEP=1
	if [ "$1" != 0 ]; then
		diagnose
		[ "${E2E_KEEP:-0}" = 1 ] && { log "E2E_KEEP=1: leaving $NS"; return; }
	fi
	kubectl get ns "$NS" >/dev/null 2>&1 && deploy/kubernetes/uninstall.sh -n "$NS" --release "$RELEASE" --purge --yes >/dev/null 2>&1 &&
		kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
	return 0
}

# ---- 4. SQLite on hostPath, PPML TLS Secrets
# the Secrets of BigDL's generate-keys.sh and generate-password.sh, and the
# root key, made by kmsctl (no openssl, keytool or JDK)
ppml_secrets() {
	local d=$WORK/ppml
	rm -rf "$d" && mkdir -p "$d"
	"$KMSCTL" secrets generate-keys --out "$d" --namespace "$NS" --ip "$NODE_IP" \
		--dns "$RELEASE.$NS.svc" --dns "$RELEASE" --random-password >"$d/generate.out" 2>&1 || { cat "$d/generate.out"; return 1; }
	"$KMSCTL" secrets root-key --namespace "$NS" --out "$d/root-key.yaml" >>"$d/generate.out" 2>&1 || { cat "$d/generate.out"; return 1; }
	kubectl apply -f "$d/keys/keys.yaml" -f "$d/password/password.yaml" -f "$d/root-key.yaml" | sed 's/^/  /' || return 1
	# they are the user's, not the chart's: uninstall_clean removes them itself
	kubectl -n "$NS" label secret ssl-keys ssl-password kms-root-key kms-e2e-fixture=true >/dev/null
}
# the certificate kmsd serves is the one in keystore.pkcs12, opened as BigDL
# did: the password decrypted from output.bin with key.txt
pkcs12_equivalence() {
	local d=$WORK/ppml pw served stored
	pw=$(openssl pkeyutl -decrypt -inkey "$d/password/key.txt" -in "$d/password/output.bin" | tr -d '\n') || return 1
	stored=$(openssl pkcs12 -in "$d/keys/keystore.pkcs12" -passin "pass:$pw" -nokeys -clcerts 2>/dev/null ||
		openssl pkcs12 -legacy -in "$d/keys/keystore.pkcs12" -passin "pass:$pw" -nokeys -clcerts) || { fail "cannot open keystore.pkcs12"; return 1; }
	stored=$(echo "$stored" | openssl x509 -noout -fingerprint -sha256)
	served=$(openssl s_client -connect "$NODE_IP:$KMS_PORT" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
	[ -n "$served" ] && [ "$served" = "$stored" ] || { fail "served $served, keystore.pkcs12 $stored"; return 1; }
	echo "  kmsd serves the keystore.pkcs12 certificate ($served)"
	[ -z "$(kubectl -n "$NS" get secret kms-root-key -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}')" ] &&
		[ "$(kubectl -n "$NS" get deploy "$RELEASE" -o jsonpath='{.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name}')" = kms-root-key ] ||
		{ fail "the root key does not come from kmsctl's kms-root-key Secret"; return 1; }
	echo "  the root key comes from kmsctl's Secret kms-root-key"
}
mode_sqlite() {
	local rc=0
	step "sqlite: namespace, hostPath volume, kmsctl secrets (ssl-keys, ssl-password, root key)" eval 'new_namespace kms-e2e-sqlite && ppml_secrets' &&
		step "sqlite: install.sh (hostPath, kmsIP, TLS from ssl-keys)" kms_install --host-path "$HOSTPATH" &&
		step "sqlite: security context, restricted namespace" pod_security &&
		step "sqlite: seed curl sequence (NodePort; kmsIP with --cacert)" curl_sequence --cacert "$WORK/ppml/keys/server.crt" &&
		step "sqlite: served cert = keystore.pkcs12 (password from output.bin)" pkcs12_equivalence &&
		step "sqlite: helm test" helm_test &&
		step "sqlite: delete the pod under load, no acked key lost" under_load delete -1 delete_one_pod server &&
		step "sqlite: rolling upgrade v1->v2 under load, 0 failures" under_load upgrade 0 \
			kms_install --host-path "$HOSTPATH" --image "$IMAGE_V2" -- --set strategy.type=RollingUpdate \
			--set strategy.rollingUpdate.maxSurge=1 --set strategy.rollingUpdate.maxUnavailable=0 &&
		step "sqlite: uninstall (keep) + reinstall: same keys" reinstall_keeps_keys &&
		step "sqlite: uninstall --purge, nothing left" uninstall_clean || rc=1
	end_mode $rc
}
reinstall_keeps_keys() {
	deploy/kubernetes/uninstall.sh --namespace "$NS" --release "$RELEASE" >"$WORK/uninstall-keep.out" 2>&1 || { cat "$WORK/uninstall-keep.out"; return 1; }
	sed -n '/^kept/,$p' "$WORK/uninstall-keep.out" | sed 's/^/  /'
	kms_install --host-path "$HOSTPATH" --image "$IMAGE_V2" >/dev/null || return 1
	retry 30 curl -skf --max-time 3 "https://$NODE_IP:$KMS_PORT/readyz" >/dev/null || return 1
	"$KMSLOAD" -url "$(urls)" -token "$TOKEN" -verify "$WORK/acked-$NS" | tail -1 | sed 's/^/  /'
	test "${PIPESTATUS[0]}" = 0
}

# ---- 5. bundled MariaDB, kubernetes.io/tls Secret
tls_secret() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" \
		-days 30 -subj "/CN=kms" -addext "subjectAltName=IP:$NODE_IP" 2>/dev/null &&
		kubectl -n "$NS" create secret tls kms-tls --cert="$WORK/tls.crt" --key="$WORK/tls.key" >/dev/null &&
		kubectl -n "$NS" label secret kms-tls kms-e2e-fixture=true >/dev/null
}
mode_mariadb() {
	local rc=0
	step "mariadb: namespace, hostPath volume, kubernetes.io/tls Secret" eval 'new_namespace kms-e2e-mariadb && tls_secret' &&
		step "mariadb: install.sh --store mariadb (hostPath, kmsIP, TLS secret)" kms_install --store mariadb --host-path "$HOSTPATH" --tls secret:kms-tls &&
		step "mariadb: security context, restricted namespace" pod_security &&
		step "mariadb: seed curl sequence (NodePort; kmsIP with --cacert)" curl_sequence --cacert "$WORK/tls.crt" &&
		step "mariadb: root password set, root only over the socket" mariadb_accounts &&
		step "mariadb: delete the kmsd pod under load, nothing lost" under_load delete -1 delete_one_pod server &&
		step "mariadb: delete the MariaDB pod under load, nothing lost" under_load dbdelete -1 delete_one_pod mariadb &&
		step "mariadb: helm test" helm_test &&
		step "mariadb: uninstall --purge, nothing left" uninstall_clean || rc=1
	end_mode $rc
}
mariadb_accounts() {
	local pw
	pw=$(kubectl -n "$NS" get secret "$RELEASE"-mariadb -o jsonpath='{.data.root-password}' | base64 -d)
	[ ${#pw} -ge 16 ] || { fail "root password '${#pw}' characters"; return 1; }
	# the pod's own healthcheck logs in as root over the socket with the Secret's password
	kubectl -n "$NS" exec "$RELEASE"-mariadb-0 -- /mariadb-init -healthcheck || { fail "root login over the socket"; return 1; }
	echo "  root has a ${#pw}-character random password; root@localhost only (socket)"
}

# ---- 6. three replicas on the bundled MariaDB
mode_replicas() {
	local rc=0
	step "replicas: namespace, hostPath volume" new_namespace kms-e2e-replicas &&
		step "replicas: install.sh --store mariadb --replicas 3 (self-signed)" kms_install --store mariadb --replicas 3 --host-path "$HOSTPATH" -- --set networkPolicy.enabled=true &&
		step "replicas: 3 ready kmsd pods" eval '[ "$(kubectl -n $NS get deploy $RELEASE -o jsonpath={.status.readyReplicas})" = 3 ]' &&
		step "replicas: security context, restricted namespace" pod_security &&
		step "replicas: seed curl sequence (NodePort, kmsIP)" curl_sequence -k &&
		step "replicas: delete the serving pod under load, nothing lost" under_load delete -1 delete_one_pod server &&
		step "replicas: rolling upgrade v1->v2 under load, 0 failures" under_load upgrade 0 \
			kms_install --store mariadb --replicas 3 --host-path "$HOSTPATH" --image "$IMAGE_V2" -- --set networkPolicy.enabled=true &&
		step "replicas: every pod runs v2" eval '[ "$(kubectl -n $NS get pods -l app.kubernetes.io/component=server -o jsonpath="{.items[*].spec.containers[0].image}" | tr " " "\n" | sort -u)" = "$IMAGE_V2" ]' &&
		step "replicas: helm test" helm_test &&
		step "replicas: uninstall --purge, nothing left" uninstall_clean || rc=1
	end_mode $rc
}

# cleanup_images removes this run's images, and the references by
# configuration digest that the CRI plugin adds when it uses them
cleanup_images() {
	local a m
	for a in "$WORK"/images/*.tar; do
		m=$(tar -xOf "$a" index.json | jq -r '.manifests[0].digest' | cut -d: -f2)
		$CTR images rm "$(tar -xOf "$a" "blobs/sha256/$m" | jq -r .config.digest)" >/dev/null 2>&1
	done
	for a in $IMAGE_V1 $IMAGE_V2 $MARIADB_IMAGE; do $CTR images rm "$a" >/dev/null 2>&1; done
	return 0
}

# ---- run
if step "cluster: up.sh" cluster_up; then
	if step "images: build (kms v1, v2, MariaDB), inspect, ctr import" build_images && step "tools: kmsload, kmsctl" build_tools; then
		step "static: helm lint, every values combination, dry-run=server" static_checks
		for m in $MODES; do "mode_$m"; done
	fi
	cleanup_images
fi
summary
exit $FAILED
