-- Mentions by outcome (the columns in truth_eval.OUTCOMES' order).
SELECT count(*) FILTER (WHERE outcome = 'correct'),
       count(*) FILTER (WHERE outcome = 'wrongly_merged'),
       count(*) FILTER (WHERE outcome = 'left_apart')
FROM _eval_mention
