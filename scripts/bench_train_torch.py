#!/usr/bin/python3
"""PyTorch's side of `dmi bench train`: the training step of PyTorch's word_language_model example
(examples/word_language_model: model.py's RNNModel, main.py's train()) on the very windows our
trainer is timed on, so the two tokens/s are comparable.

Not a dependency of the package or of npm test: `dmi bench train` runs it with /usr/bin/python3 when
that has torch (Debian's python3-torch) and skips it with a note otherwise.

Protocol (stdin/stdout, one JSON line each), so that the benchmark can interleave rounds with ours:
  argv: --windows FILE (int32 little-endian: count, bptt, batch, then count windows of input (bptt, batch)
        and target (bptt, batch)) --vocab V --cell lstm|gru --hidden H --dropout P --lr X --clip X --seed S
  stdout: {"ready": true, "torch": version}, then for every line "threads N first count" on stdin,
          the N-thread training of windows [first, first + count) and {"seconds": s, "tokens": n, "loss": x}.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    """model.py's RNNModel: embedding, dropout, one recurrent layer, dropout, decoder tied to the embedding."""

    def __init__(self, cell, vocab, hidden, dropout):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, hidden)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(hidden, hidden, 1)
        self.decoder = nn.Linear(hidden, vocab)
        self.decoder.weight = self.encoder.weight
        self.cell = cell
        self.hidden = hidden
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x, state):
        emb = self.drop(self.encoder(x))
        out, state = self.rnn(emb, state)
        out = self.drop(out)
        decoded = self.decoder(out).view(-1, self.decoder.out_features)
        return F.log_softmax(decoded, dim=1), state

    def init_hidden(self, batch):
        z = torch.zeros(1, batch, self.hidden)
        return (z, z.clone()) if self.cell == "lstm" else z


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def main():
    p = argparse.ArgumentParser()
    for name in ("windows", "cell"):
        p.add_argument("--" + name, required=True)
    for name in ("vocab", "hidden", "seed"):
        p.add_argument("--" + name, type=int, required=True)
    for name in ("dropout", "lr", "clip"):
        p.add_argument("--" + name, type=float, required=True)
    a = p.parse_args()
    raw = np.fromfile(a.windows, dtype="<i4")
    count, bptt, batch = (int(v) for v in raw[:3])
    pairs = torch.from_numpy(raw[3:].astype(np.int64)).view(count, 2, bptt, batch)
    torch.manual_seed(a.seed)
    model = RNNModel(a.cell, a.vocab, a.hidden, a.dropout)
    model.train()
    criterion = nn.NLLLoss()
    state = model.init_hidden(batch)
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        _, threads, first, n = line.split()
        torch.set_num_threads(int(threads))
        start = time.perf_counter()
        total = 0.0
        # main.py's train(), window by window.
        for i in range(int(first), int(first) + int(n)):
            data, targets = pairs[i, 0], pairs[i, 1].reshape(-1)
            model.zero_grad()
            state = detach(state)
            output, state = model(data, state)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            for param in model.parameters():
                param.data.add_(param.grad, alpha=-a.lr)
            total += loss.item()
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "tokens": int(n) * bptt * batch, "loss": total / int(n)}), flush=True)


if __name__ == "__main__":
    main()
