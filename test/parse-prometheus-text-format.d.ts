/** Types for the parse-prometheus-text-format package (it ships none); what test/metrics_test.ts uses. */
declare module "parse-prometheus-text-format" {
  export interface Sample {
    value: string;
    labels?: Record<string, string>;
  }
  export interface HistogramSample {
    buckets: Record<string, string>;
    count: string;
    sum: string;
    labels?: Record<string, string>;
  }
  export interface MetricFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
    metrics: Array<Sample | HistogramSample>;
  }
  /** Parses Prometheus text format 0.0.4; throws on an invalid line. */
  export default function parsePrometheusTextFormat(text: string): MetricFamily[];
}
