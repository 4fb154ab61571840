-- Traced mentions by linking method, then by outcome (truth_eval.OUTCOMES' order).
SELECT method, count(*),
       count(*) FILTER (WHERE outcome = 'correct'),
       count(*) FILTER (WHERE outcome = 'wrongly_merged'),
       count(*) FILTER (WHERE outcome = 'left_apart')
FROM _eval_mention
WHERE person IS NOT NULL GROUP BY ALL ORDER BY 1
