"""Alignment with human feedback: rankings -> preference pairs, and the reward-model, DPO and PPO losses.

    preferences.py  rankings -> preference pairs (the rules for ties and bad ranks)
    records.py      the feedback files (completions, rankings, pairs), read with file:line errors, written atomically
    completions.py  N seeded completions per prompt with the decoding engine
    rankers.py      scripted stand-ins for people (shortest, longest, contains:WORD)
    logprobs.py     per-token and per-sequence log-probs from logits, with masks; entropy
    reward.py       pairwise (Bradley-Terry) reward-model loss
    dpo.py          DPO, IPO, robust DPO, hinge (DPO_LOSSES)
    kl.py           per-token KL estimators, KL-penalised rewards, fixed and adaptive KL controllers
    ppo.py          GAE, whitening, clipped policy and value losses, entropy

The maths modules are pure functions on tensors; preferences, records and rankers import no torch.
"""
