import torch


def real_positions(attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the indices of the tokens that are not padding."""
    return [row.nonzero().flatten() for row in attention_mask]


def scatter_rows(rows: list[torch.Tensor], positions: list[torch.Tensor], length: int):
    out = rows[0].new_zeros(len(rows), length, rows[0].shape[-1])
    for b, (row, pos) in enumerate(zip(rows, positions)):
        out[b, pos] = row
    return out
