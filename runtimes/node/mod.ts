/** burrow's runtime adapter for Node.js. @module */
export { nodeNet as net } from "./net.ts";
