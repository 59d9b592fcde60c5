/**
 * Which evaluation metrics are the headline figures a person reads (the summary table, the MLflow
 * plot), and which way each is better. Counts and per-split breakdowns stay in `status --json` and MLflow.
 */

const HEADLINE = /(^|\/)(CHAIR_S|CHAIR_I|CHAIR_I_distinct|recall|mean\/accuracy|mean\/f1|adversarial\/accuracy|accuracy|img_accuracy|image_accuracy|circular_accuracy|perception|cognition|total|relative_score)$/;
const BREAKDOWN = /\/(random|popular|adversarial)\/(?!accuracy$)|\/(category|l2_category|dimension|capability|answer_type)\/|\/(random|popular)\//;
/** Hallucination rates: the only headline metrics where lower is better. CHAIR_I_distinct counts each object once
 * per caption, so a model that repeats true objects cannot lower it (it sits beside CHAIR_I when it fits). */
const LOWER_IS_BETTER = /(^|\/)(CHAIR_S|CHAIR_I|CHAIR_I_distinct)$/;

/** Metric names (after the benchmark) in the order they earn a place when not all fit. */
export const METRIC_PRIORITY = ['CHAIR_I', 'CHAIR_S', 'recall', 'mean/accuracy', 'accuracy', 'mean/f1', 'adversarial/accuracy', 'total', 'relative_score', 'CHAIR_I_distinct'];

/** True for `<benchmark>/<metric>` names that are a benchmark's headline figure, not a count or a breakdown. */
export function isHeadlineMetric(name: string): boolean {
  return HEADLINE.test(name) && !BREAKDOWN.test(name);
}

/** Which way a headline metric is better: CHAIR rates down, scores and accuracies up. */
export function metricDirection(name: string): 'minimize' | 'maximize' {
  return LOWER_IS_BETTER.test(name) ? 'minimize' : 'maximize';
}
