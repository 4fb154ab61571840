"""Governance: each batch's contract (Great Expectations), timeliness against the update cycle,
objections (数据异议) and their exchange with the providers, the providers' scorecards."""
