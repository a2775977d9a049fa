// What the node says of itself at /healthz that the page needs: the fingerprint of its TLS trust
// anchor (base64url, as invite links carry it in `f=`).

// Resolves to the fingerprint, to "" when the node has none (`--tls off`, ACME: `null`), or to
// undefined when the node did not answer (offline, an error): then the caller may ask again later.
export async function tlsFingerprint() {
  try {
    const signal = typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(10000) : undefined;
    const response = await fetch("/healthz", { cache: "no-store", signal });
    if (!response.ok) return undefined;
    const health = await response.json();
    return typeof health.tls_fingerprint === "string" ? health.tls_fingerprint : "";
  } catch {
    return undefined;
  }
}
