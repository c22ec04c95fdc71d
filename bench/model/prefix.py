"""Clean prompt prefixes computed once, for edits that touch only the last prompt token.

Every scored edit of ΔProb (IG steps, the ablation, the random edit, the controls) changes the
activations at the last prompt token; attention is causal, so the positions before it are the
clean ones in every pass. The prompt without its last token is run once per distinct prompt and
its key/value cache kept; an edited pass then runs only the last prompt token and the answer
tokens, with the cache gathered over the batch's rows. The scores equal a full pass's within
float tolerance (tests compare both paths for every lens kind).

Prefixes are left-padded to one width so any rows can be gathered by index; pad keys are masked
out and each row's positions are given explicitly, so padding changes no value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.model.loading import LoadedModel
from bench.model.scoring import Batch, Encoded, collate


class CleanPrefixes:
    """The clean key/value cache of every distinct prompt prefix (all prompt tokens but the last)."""

    def __init__(self, loaded: LoadedModel, items: Sequence[Encoded], batch_size: int):
        prefixes = sorted({item.prompt_ids[:-1] for item in items})
        # a row after its cached prefix is a few tokens where a whole one is a dozen: a pass may take
        # that many more rows for the same number of tokens (and about the same memory)
        whole = sum(len(i.prompt_ids) + len(i.answer_ids) - 1 for i in items)
        self.rows_factor = max(1, whole // max(1, sum(len(i.answer_ids) for i in items)))
        self.index = {prefix: i for i, prefix in enumerate(prefixes)}
        self.lengths = torch.tensor([len(p) for p in prefixes])
        width = int(self.lengths.max()) if prefixes else 0
        self.mask = torch.zeros(len(prefixes), width, dtype=torch.long)
        ids = torch.full((len(prefixes), width), loaded.tokenizer.pad_token_id, dtype=torch.long)
        for i, prefix in enumerate(prefixes):
            if prefix:
                ids[i, width - len(prefix) :] = torch.tensor(prefix)
                self.mask[i, width - len(prefix) :] = 1
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        if width == 0:  # one-token prompts only: nothing before the edited position
            return
        chunks: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        device = loaded.device
        with torch.no_grad():
            for start in range(0, len(prefixes), batch_size):
                mask = self.mask[start : start + batch_size]
                out = loaded.model(
                    input_ids=ids[start : start + batch_size].to(device),
                    attention_mask=mask.to(device),
                    position_ids=(mask.cumsum(1) - 1).clamp_min(0).to(device),
                    use_cache=True,
                    logits_to_keep=1,  # the prefix's logits are never read
                )
                cache = out.cache if "cache" in out else out.past_key_values
                chunks.append([(layer.keys, layer.values) for layer in cache.layers])
        self.layers = [
            (torch.cat([c[i][0] for c in chunks]), torch.cat([c[i][1] for c in chunks])) for i in range(len(chunks[0]))
        ]

    def rows_per_pass(self, batch_size: int) -> int:
        """Rows of a pass after cached prefixes holding as many tokens as ``batch_size`` whole sequences."""
        return batch_size * self.rows_factor

    def collate(self, loaded: LoadedModel, items: Sequence[Encoded]) -> Batch:
        """A batch of the items' last prompt token and answer tokens, after their cached clean prefixes."""
        rows = torch.tensor([self.index[item.prompt_ids[:-1]] for item in items])
        suffixes = [item.prompt_ids[-1:] + item.answer_ids[:-1] for item in items]
        width = max(map(len, suffixes))
        input_ids = torch.full((len(items), width), loaded.tokenizer.pad_token_id, dtype=torch.long)
        suffix_mask = torch.zeros((len(items), width), dtype=torch.long)
        answer_rows, positions, targets = [], [], []
        for b, (item, ids) in enumerate(zip(items, suffixes, strict=True)):
            input_ids[b, : len(ids)] = torch.tensor(ids)
            suffix_mask[b, : len(ids)] = 1
            for j, token in enumerate(item.answer_ids):  # column j predicts answer token j
                answer_rows.append(b)
                positions.append(j)
                targets.append(token)
        offsets = self.lengths[rows]
        device = loaded.device
        past = [(keys[rows.to(keys.device)], values[rows.to(keys.device)]) for keys, values in self.layers] or None
        return Batch(
            input_ids=input_ids.to(device),
            attention_mask=torch.cat([self.mask[rows], suffix_mask], dim=1).to(device),
            last_prompt=torch.zeros(len(items), dtype=torch.long, device=device),
            rows=torch.tensor(answer_rows, device=device),
            positions=torch.tensor(positions, device=device),
            targets=torch.tensor(targets, device=device),
            position_ids=(offsets[:, None] + torch.arange(width)).to(device),
            past=past,
            offsets=offsets.to(device),
        )


def rows_per_pass(batch_size: int, prefixes: CleanPrefixes | None) -> int:
    return batch_size if prefixes is None else prefixes.rows_per_pass(batch_size)


def collate_items(loaded: LoadedModel, items: Sequence[Encoded], prefixes: CleanPrefixes | None) -> Batch:
    """The items as one batch: after their cached prefixes when given, else whole sequences."""
    if prefixes is None:
        return collate(items, loaded.tokenizer.pad_token_id, loaded.device)
    return prefixes.collate(loaded, items)
