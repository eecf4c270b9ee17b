/**
 * burrow's own version (package.json), for `--version`, the `software`
 * string peers log, and the `burrow_build_info` metric.
 *
 * @module
 */
export const VERSION = "0.1.0";
