// A token's full key is shown once, right after it is created. It is kept
// here, in memory only (never in storage or the URL), so the Connect page
// reached from that moment can fill it in; a reload forgets it.

const keys = new Map();

export function rememberKey(tokenId, key) {
  keys.set(String(tokenId), key);
}

export function freshKey(tokenId) {
  return keys.get(String(tokenId)) || null;
}

export function forgetKey(tokenId) {
  keys.delete(String(tokenId));
}
