/** burrow's runtime adapter for Bun. @module */
export { bunNet as net } from "./net.ts";
