import torch

from textgen.decode.sampling import next_token, sample_categorical, top_k_filter, top_p_filter


def test_temperature_zero_is_argmax():
    logits = torch.randn(50, 11)
    assert torch.equal(next_token(logits, temperature=0.0), logits.argmax(-1))


def test_top_k_never_samples_outside_the_k_best():
    torch.manual_seed(0)
    logits = torch.randn(4, 20)
    allowed = torch.topk(logits, 3, dim=-1).indices
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        tokens = next_token(logits, temperature=2.0, top_k=3, generator=g)
        assert (allowed == tokens[:, None]).any(-1).all()


def test_top_p_support_is_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(probs.log(), 0.81))
    assert kept.tolist() == [[True, True, True, False]]
    # the most likely token survives however small p is
    assert torch.isfinite(top_p_filter(probs.log(), 1e-6)).tolist() == [[True, False, False, False]]


def test_top_p_sampling_stays_in_support_with_shuffled_order():
    torch.manual_seed(3)
    logits = torch.randn(3, 30)
    support = torch.isfinite(top_p_filter(logits, 0.6))
    g = torch.Generator().manual_seed(2)
    for _ in range(300):
        tokens = next_token(logits, top_p=0.6, generator=g)
        assert support.gather(1, tokens[:, None]).all()


def test_top_k_filter_keeps_exactly_k():
    logits = torch.randn(5, 9)
    assert torch.isfinite(top_k_filter(logits, 4)).sum(-1).tolist() == [4] * 5


def test_same_seed_same_tokens():
    logits = torch.randn(8, 40)
    a = next_token(logits, generator=torch.Generator().manual_seed(5))
    b = next_token(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_categorical_draws_follow_the_probabilities_and_skip_zeros():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3, 0.0], [2.0, 2.0, 0.0, 0.0, 4.0]])  # the second row is unnormalised
    n = 40_000
    draws = sample_categorical(probs.repeat(n, 1).view(n, 2, 5), torch.Generator().manual_seed(0))  # (n, 2)
    assert draws.shape == (n, 2)
    for row, expected in enumerate(probs / probs.sum(-1, keepdim=True)):
        freq = torch.bincount(draws[:, row], minlength=5).float() / n
        assert freq[expected == 0].sum() == 0, "a zero-probability token was drawn"
        torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    again = sample_categorical(probs.repeat(n, 1).view(n, 2, 5), torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_source_keys_depend_on_the_seed_and_the_source_alone():
    from textgen.decode.sampling import source_keys

    a, b = [5, 6, 7], [5, 6, 8]
    keys = source_keys(3, [a, b, a], 4)
    assert keys.shape == (3, 4) and torch.equal(keys[0], keys[2]) and not torch.equal(keys[0], keys[1])
    assert torch.equal(source_keys(3, [a], 4)[0], keys[0])  # alone or beside others
    assert not torch.equal(source_keys(4, [a], 4)[0], keys[0])
    assert len(set(keys[:2].flatten().tolist())) == 8  # every (source, sample) its own stream


def test_a_vanishing_temperature_samples_the_argmax_not_nan():
    logits = torch.tensor([[50.0, 49.0, -3.0], [-60.0, -61.0, -1e30], [0.5, 2.0, 1.0]])
    for t in (1e-3, 1e-30, 1e-40, 1e-45, 5e-324):  # logits / T overflows float32 from about 1e-37 here
        tokens = next_token(logits, temperature=t, generator=torch.Generator().manual_seed(0))
        assert tokens.tolist() == [0, 0, 1], t


def test_a_repeated_source_draws_new_keys_and_its_first_copy_keeps_its_own():
    from textgen.decode.sampling import repeat_counts, source_keys

    sources = [[4, 5], [6], [4, 5], [4, 5]]
    repeats = repeat_counts(sources)
    assert repeats == [0, 0, 1, 2]
    keys = source_keys(7, sources, 3, repeats=repeats)
    assert torch.equal(keys[0], source_keys(7, [[4, 5]], 3)[0]) and torch.equal(keys[1], source_keys(7, [[6]], 3)[0])
    assert len({tuple(row.tolist()) for row in keys}) == 4
