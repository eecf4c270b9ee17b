/**
 * Keeps a server's issued tokens (tokens.ts) current with the changes other
 * servers make through the state store (store.ts): a token issued or
 * revoked elsewhere is read and merged (a revocation closes the token's
 * open streams here too), new keys are read when another server rotates,
 * and everything is read again after an outage. Changes are applied one
 * after the other, in the order they came; a revocation is never undone by
 * a read that started before it.
 *
 * @module
 */
import { StoreError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Store, StoreChange } from "./store.ts";
import type { TokenStore } from "./tokens.ts";

/** Follow `store`'s changes into `tokens`; returns the unsubscribe. */
export function followStore(tokens: TokenStore, store: Store, log: Logger): () => void {
  let chain: Promise<void> = Promise.resolve();
  const apply = async (c: StoreChange) => {
    if (c.what === "keys") return tokens.setKeys(await store.tokens.keys());
    const data = c.what === "tokens" ? await store.tokens.get(c.ids) : await store.tokens.load();
    if (c.what === "all") await tokens.setKeys(data.keys);
    tokens.merge(data, c.what === "all");
  };
  return store.onChange((c) => {
    chain = chain.then(() => apply(c)).catch((e) => {
      // An outage: the store says `all` when it is back.
      if (!(e instanceof StoreError)) {
        log.error("cannot apply a change from the state store", { what: c.what, error: String(e) });
      }
    });
  });
}
