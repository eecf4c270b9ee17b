/** burrow's runtime adapter for Deno. @module */
export { denoNet as net } from "./net.ts";
