// Offline validation of rendered Kubernetes manifests, used by scripts/check-deploy.
//
//   node validate-manifests.mjs validate MANIFESTS.yaml
//   node validate-manifests.mjs extract  MANIFESTS.yaml OUTDIR   # config.yaml + env of the pods
//   node validate-manifests.mjs localize CONFIG OUT ING_PORT GRPC_PORT METRICS_PORT DATA_DIR [FILES_ROOT]
//
// MLC_NODE_MODULES names the node_modules directory holding kubernetes-models (the Kubernetes
// OpenAPI schemas compiled to ajv validators: types, required fields, enums, formats),
// @kubernetes/client-node (its generated models carry every object's field list, used to reject
// unknown fields, which the schemas allow) and js-yaml.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const nm = process.env.MLC_NODE_MODULES;
if (!nm) { console.error('MLC_NODE_MODULES is not set'); process.exit(2); }
const req = createRequire(path.join(nm, 'noop.js'));
const yaml = req('js-yaml');
const models = await import(pathToFileURL(path.join(nm, '@kubernetes/client-node/dist/gen/models/all.js')).href);

const die = (msg) => { console.error(msg); process.exit(1); };
const loadDocs = (file) =>
  yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d !== null && d !== undefined);

// ---------- schema validation (kubernetes-models) ----------
function schemaModel(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try { return req(mod)[kind]; } catch { return null; }
}

// ---------- unknown-field check (client-node field lists) ----------
function fieldModel(apiVersion, kind) {
  const version = apiVersion.split('/').pop();
  return models[version.charAt(0).toUpperCase() + version.slice(1) + kind] || null;
}
function checkFields(value, type, where, errors) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) { errors.push(`${where}: expected a list`); return; }
    value.forEach((v, i) => checkFields(v, m[1], `${where}[${i}]`, errors));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value !== 'object' || Array.isArray(value)) { errors.push(`${where}: expected a map`); return; }
    for (const [k, v] of Object.entries(value)) checkFields(v, m[1], `${where}.${k}`, errors);
    return;
  }
  const cls = models[type];
  if (!cls || typeof cls.getAttributeTypeMap !== 'function') return;  // primitives, IntOrString, any
  if (typeof value !== 'object' || Array.isArray(value)) { errors.push(`${where}: expected an object (${type})`); return; }
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) { errors.push(`${where}.${k}: unknown field (not in ${type})`); continue; }
    checkFields(v, attrs.get(k), `${where}.${k}`, errors);
  }
}

// ---------- chart-specific checks ----------
const matches = (selector, labels) =>
  Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);

function chartChecks(docs) {
  const errors = [];
  const byKind = (k) => docs.filter((d) => d.kind === k);
  const names = (k) => new Set(byKind(k).map((d) => d.metadata.name));
  const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')];
  if (!byKind('Deployment').length) errors.push('no ingress Deployment rendered');
  if (!byKind('StatefulSet').length) errors.push('no writer StatefulSet rendered');
  if (byKind('ConfigMap').length !== 1) errors.push('expected exactly one ConfigMap');
  for (const w of workloads) {
    const id = `${w.kind}/${w.metadata.name}`;
    const pod = w.spec.template;
    if (!matches(w.spec.selector.matchLabels, pod.metadata.labels)) errors.push(`${id}: selector does not match the pod labels`);
    const psc = pod.spec.securityContext || {};
    if (psc.runAsNonRoot !== true || psc.runAsUser !== 10001 || psc.seccompProfile?.type !== 'RuntimeDefault')
      errors.push(`${id}: pod securityContext must be runAsNonRoot, runAsUser 10001, seccomp RuntimeDefault`);
    const vols = new Set((pod.spec.volumes || []).map((v) => v.name));
    for (const t of w.spec.volumeClaimTemplates || []) vols.add(t.metadata.name);
    for (const v of pod.spec.volumes || []) {
      if (v.configMap && !names('ConfigMap').has(v.configMap.name)) errors.push(`${id}: volume ${v.name} names a ConfigMap not rendered`);
    }
    for (const c of pod.spec.containers) {
      const cid = `${id} container ${c.name}`;
      const sc = c.securityContext || {};
      if (sc.runAsNonRoot !== true || sc.readOnlyRootFilesystem !== true || sc.allowPrivilegeEscalation !== false ||
          !(sc.capabilities?.drop || []).includes('ALL') || sc.seccompProfile?.type !== 'RuntimeDefault')
        errors.push(`${cid}: securityContext must be non-root, read-only root, no privilege escalation, drop ALL, seccomp RuntimeDefault`);
      if (!c.livenessProbe || !c.readinessProbe) errors.push(`${cid}: liveness and readiness probes are required`);
      if (!c.resources?.requests) errors.push(`${cid}: resource requests are required`);
      const mounts = new Map((c.volumeMounts || []).map((m) => [m.mountPath, m.name]));
      if (!mounts.has('/tmp')) errors.push(`${cid}: /tmp must be mounted (read-only root filesystem)`);
      if (!mounts.has('/etc/mlc')) errors.push(`${cid}: /etc/mlc (config) must be mounted`);
      for (const m of c.volumeMounts || []) if (!vols.has(m.name)) errors.push(`${cid}: mount ${m.name} has no volume`);
      const portNames = new Set((c.ports || []).map((p) => p.name));
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
        const port = p?.httpGet?.port;
        if (typeof port === 'string' && !portNames.has(port)) errors.push(`${cid}: probe port ${port} is not a container port`);
      }
    }
  }
  const sts = byKind('StatefulSet')[0];
  if (sts) {
    const c = sts.spec.template.spec.containers[0];
    if (!(sts.spec.volumeClaimTemplates || []).length) errors.push('writer StatefulSet: no volumeClaimTemplates (persistence off?)');
    const headless = byKind('Service').find((s) => s.metadata.name === sts.spec.serviceName);
    if (!headless || headless.spec.clusterIP !== 'None') errors.push('writer StatefulSet: serviceName is not a rendered headless Service');
    const tls = (c.env || []).some((e) => e.name === 'MLC_TLS_CA');
    if (!tls && (!c.livenessProbe?.grpc || !c.readinessProbe?.grpc)) errors.push('writer: liveness/readiness must be gRPC health probes');
    // Kubelet gRPC probes are plaintext: with TLS they must be HTTP on the metrics port.
    if (tls && (c.livenessProbe?.httpGet?.port !== 'metrics' || c.readinessProbe?.httpGet?.port !== 'metrics'))
      errors.push('writer: with TLS, liveness/readiness must be HTTP probes on the metrics port');
    if (c.startupProbe?.httpGet?.path !== '/healthz') errors.push('writer: startup probe must be HTTP /healthz on the metrics port');
  }
  for (const s of byKind('Service')) {
    const backs = workloads.filter((w) => matches(s.spec.selector, w.spec.template.metadata.labels));
    if (backs.length !== 1) { errors.push(`Service/${s.metadata.name}: selector matches ${backs.length} workloads`); continue; }
    const ports = new Set(backs[0].spec.template.spec.containers.flatMap((c) => (c.ports || []).map((p) => p.name)));
    for (const p of s.spec.ports) if (typeof p.targetPort === 'string' && !ports.has(p.targetPort))
      errors.push(`Service/${s.metadata.name}: targetPort ${p.targetPort} is not a container port`);
  }
  for (const i of byKind('Ingress')) for (const r of i.spec.rules || []) for (const p of r.http.paths)
    if (!names('Service').has(p.backend.service.name)) errors.push(`Ingress/${i.metadata.name}: backend ${p.backend.service.name} is not rendered`);
  for (const n of byKind('NetworkPolicy')) {
    if (!workloads.some((w) => matches(n.spec.podSelector.matchLabels, w.spec.template.metadata.labels)))
      errors.push(`NetworkPolicy/${n.metadata.name}: podSelector selects no pod of the chart`);
  }
  const writerPolicy = sts && byKind('NetworkPolicy').find((n) => matches(n.spec.podSelector.matchLabels, sts.spec.template.metadata.labels));
  if (sts && byKind('NetworkPolicy').length && !writerPolicy) errors.push('no NetworkPolicy selects the writer');
  if (writerPolicy) {
    const grpcRule = writerPolicy.spec.ingress.find((r) => r.ports.some((p) => p.port === 'grpc'));
    const ing = byKind('Deployment')[0];
    if (!grpcRule || !grpcRule.from?.some((f) => f.podSelector && matches(f.podSelector.matchLabels, ing.spec.template.metadata.labels)))
      errors.push('writer NetworkPolicy: the ingress pods cannot reach the gRPC port');
    if (grpcRule?.from?.some((f) => !f.podSelector && !f.namespaceSelector && !f.ipBlock)) errors.push('writer NetworkPolicy: gRPC open to everyone');
  }
  // Every *_file the config names (TLS material) is mounted, from a Secret that has the key,
  // into the pod of the service that reads it.
  const cm = byKind('ConfigMap')[0];
  const config = cm ? yaml.load(cm.data['config.yaml']) : {};
  const podOf = { ingress: byKind('Deployment')[0], writer: sts };
  for (const section of ['ingress', 'writer']) {
    const files = [];
    const collect = (o) => { for (const [k, v] of Object.entries(o || {})) { if (isMountedFile(k, v)) files.push(v); else if (v && typeof v === 'object') collect(v); } };
    collect(config[section]);
    const w = podOf[section];
    if (!w) continue;
    const c = w.spec.template.spec.containers[0];
    for (const f of files) {
      const dir = f.slice(0, f.lastIndexOf('/')), key = f.slice(f.lastIndexOf('/') + 1);
      const mount = (c.volumeMounts || []).find((m) => m.mountPath === dir);
      const vol = mount && (w.spec.template.spec.volumes || []).find((v) => v.name === mount.name);
      if (!vol?.secret) { errors.push(`${section}: config names ${f} but no Secret volume is mounted at ${dir}`); continue; }
      if (vol.secret.items && !vol.secret.items.some((i) => i.path === key)) errors.push(`${section}: the volume at ${dir} does not project ${key}`);
    }
  }
  for (const h of byKind('HorizontalPodAutoscaler'))
    if (!byKind(h.spec.scaleTargetRef.kind).some((d) => d.metadata.name === h.spec.scaleTargetRef.name))
      errors.push(`HorizontalPodAutoscaler/${h.metadata.name}: target not rendered`);
  return errors;
}

function validate(file) {
  const docs = loadDocs(file);
  let errors = [];
  const seen = new Set();
  for (const d of docs) {
    const id = `${d.kind}/${d.metadata?.name}`;
    if (!d.apiVersion || !d.kind || !d.metadata?.name) { errors.push(`${id}: apiVersion, kind and metadata.name are required`); continue; }
    if (seen.has(id)) errors.push(`${id}: rendered twice`);
    seen.add(id);
    const Schema = schemaModel(d.apiVersion, d.kind);
    if (!Schema) { errors.push(`${id}: ${d.apiVersion} ${d.kind} is not a known Kubernetes API`); continue; }
    try { new Schema(d).validate(); } catch (e) { errors.push(`${id}: schema: ${e.message}`); }
    const Fields = fieldModel(d.apiVersion, d.kind);
    if (!Fields) { errors.push(`${id}: no field list for ${d.apiVersion} ${d.kind}`); continue; }
    checkFields(d, Fields.name, id, errors);
  }
  errors = errors.concat(chartChecks(docs));
  const kinds = docs.map((d) => d.kind).sort().reduce((m, k) => ((m[k] = (m[k] || 0) + 1), m), {});
  if (errors.length) die(`${file}: ${errors.length} problem(s):\n  ` + errors.join('\n  '));
  console.log(`  ${docs.length} objects valid (schema, no unknown fields, chart checks): ` +
    Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', '));
}

// Env of a container as the kubelet would set it, from the rendered Secret (not a cluster).
function containerEnv(c, docs) {
  const secrets = Object.fromEntries(docs.filter((d) => d.kind === 'Secret').map((s) => [
    s.metadata.name,
    Object.fromEntries([
      ...Object.entries(s.data || {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      ...Object.entries(s.stringData || {}),
    ]),
  ]));
  const secret = (name) => secrets[name] || die(`Secret ${name} is not rendered (existingSecret? use a values file that creates it)`);
  const env = {};
  for (const f of c.envFrom || []) {
    if (!f.secretRef) die(`container ${c.name}: envFrom other than secretRef is not supported here`);
    for (const [k, v] of Object.entries(secret(f.secretRef.name))) env[(f.prefix || '') + k] = v;
  }
  for (const e of c.env || []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const s = secret(e.valueFrom.secretKeyRef.name);
      if (!(e.valueFrom.secretKeyRef.key in s)) die(`container ${c.name}: env ${e.name}: key ${e.valueFrom.secretKeyRef.key} not in the Secret`);
      env[e.name] = s[e.valueFrom.secretKeyRef.key];
    } else die(`container ${c.name}: env ${e.name}: unsupported source`);
  }
  return env;
}

function extract(file, out) {
  const docs = loadDocs(file);
  const cm = docs.find((d) => d.kind === 'ConfigMap');
  if (!cm?.data?.['config.yaml']) die('no ConfigMap with config.yaml rendered');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'config.yaml'), cm.data['config.yaml']);
  for (const [kind, comp] of [['Deployment', 'ingress'], ['StatefulSet', 'writer']]) {
    const w = docs.find((d) => d.kind === kind);
    const c = w.spec.template.spec.containers[0];
    const env = containerEnv(c, docs);
    // NUL-separated NAME=value, read by bash with `read -d ''`.
    fs.writeFileSync(path.join(out, `${comp}.env`), Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''), { mode: 0o600 });
    fs.writeFileSync(path.join(out, `${comp}.args`), (c.args || []).join('\n') + '\n');
    const mounts = (c.volumeMounts || []).map((m) => m.mountPath);
    fs.writeFileSync(path.join(out, `${comp}.mounts`), mounts.join('\n') + '\n');
  }
}

// Rewrites only the listen addresses, the writer address and data_dir of a rendered config
// (line by line, everything else byte for byte), then proves that nothing else changed.
// Every value documented with a `# --` comment in values.yaml has a row in the chart README's
// values table, and every row names a real value.
function docs(valuesFile, readmeFile) {
  const stack = [];  // [indent, key]
  let pending = false;
  const documented = [];
  for (const line of fs.readFileSync(valuesFile, 'utf8').split('\n')) {
    if (/^\s*# --/.test(line)) { pending = true; continue; }
    if (/^\s*#/.test(line) || !line.trim()) continue;
    const m = /^(\s*)([A-Za-z0-9_]+):/.exec(line);
    if (!m) continue;
    const indent = m[1].length;
    while (stack.length && stack[stack.length - 1][0] >= indent) stack.pop();
    stack.push([indent, m[2]]);
    if (pending) documented.push(stack.map((e) => e[1]).join('.'));
    pending = false;
  }
  const readme = fs.readFileSync(readmeFile, 'utf8');
  const rows = new Set([...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((r) => r[1]));
  const missing = documented.filter((k) => !rows.has(k));
  const stale = [...rows].filter((k) => !documented.includes(k));
  if (missing.length) die(`${readmeFile}: values without a row in the table: ${missing.join(', ')}`);
  if (stale.length) die(`${readmeFile}: rows for values that do not exist: ${stale.join(', ')}`);
  console.log(`  ${documented.length} documented values, each with a README row`);
}

// Rewrites the *_file paths the pods get from Secret mounts (/etc/mlc-*) to below `root`.
const isMountedFile = (key, value) => /_file$/.test(key) && typeof value === 'string' && value.startsWith('/etc/mlc-');
function relocateFiles(obj, root) {
  if (!obj || typeof obj !== 'object') return;
  for (const [k, v] of Object.entries(obj)) {
    if (isMountedFile(k, v)) obj[k] = root + v; else relocateFiles(v, root);
  }
}

function localize(src, dst, http, grpc, metrics, dataDir, filesRoot = '') {
  const text = fs.readFileSync(src, 'utf8');
  let section = null;
  const repl = {
    'ingress.listen': `127.0.0.1:${http}`, 'ingress.writer': `127.0.0.1:${grpc}`,
    'writer.listen': `127.0.0.1:${grpc}`, 'writer.metrics_listen': `127.0.0.1:${metrics}`, 'writer.data_dir': dataDir,
  };
  const done = new Set();
  const lines = text.split('\n').map((line) => {
    const top = /^([a-z_]+):/.exec(line);
    if (top) section = top[1];
    const m = /^(\s+)([a-z_]+):\s*(.*)$/.exec(line);
    const key = m && `${section}.${m[2]}`;
    if (m && m[1].length === 2 && key in repl) { done.add(key); return `${m[1]}${m[2]}: ${JSON.stringify(repl[key])}`; }
    if (m && filesRoot) {
      const v = /^"(.*)"$/.exec(m[3]);
      if (v && isMountedFile(m[2], v[1])) return `${m[1]}${m[2]}: ${JSON.stringify(filesRoot + v[1])}`;
    }
    return line;
  });
  if (done.size !== Object.keys(repl).length) die(`config: could not find ${Object.keys(repl).filter((k) => !done.has(k)).join(', ')}`);
  const out = lines.join('\n');
  const a = yaml.load(text), b = yaml.load(out);
  for (const [k, v] of Object.entries(repl)) { const [s, f] = k.split('.'); a[s][f] = v; }
  if (filesRoot) relocateFiles(a, filesRoot);
  if (JSON.stringify(a) !== JSON.stringify(b)) die('config: localizing changed more than the addresses, data_dir and mounted file paths');
  fs.writeFileSync(dst, out);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'validate') validate(args[0]);
else if (cmd === 'extract') extract(args[0], args[1]);
else if (cmd === 'localize') localize(...args);
else if (cmd === 'docs') docs(args[0], args[1]);
else die('usage: validate FILE | docs VALUES README | extract FILE OUTDIR | localize CONFIG OUT HTTP GRPC METRICS DATA_DIR [FILES_ROOT]');
