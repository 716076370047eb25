// Types of parse-prometheus-text-format 1.1.1, which ships none, as its
// README describes the output: values stay strings, as in the text format.
// NOTE: 1.1.1 folds the series of a histogram with labels besides `le` into
// one sample with only the buckets of the last series, so tests read
// labelled histograms from the text lines instead.
declare module 'parse-prometheus-text-format' {
  export interface PrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    /** Histograms only: cumulative count per upper bound, keyed by the `le` label. */
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
    quantiles?: Record<string, string>;
  }

  export interface PrometheusFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PrometheusSample[];
  }

  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
