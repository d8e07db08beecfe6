"""madmom's trained networks run faster: the same layers, weights and inputs, fewer Python steps.

    beat_activation = run_processor(RNNBeatProcessor(), signal)       # == RNNBeatProcessor()(signal), faster
    key_probabilities = run_processor(CNNKeyRecognitionProcessor(), signal)

madmom runs its networks in numpy with a Python loop per step: an LSTM layer steps through the
frames one by one and computes each of its four gates with two small dot products per frame,
for each of the 8 networks of an ensemble and both directions (3000 frames x 3 layers x 16 =
144,000 Python steps for 30 s of beat activation); a convolutional layer convolves every
(input channel, feature map) pair separately (36,864 scipy calls in the key network's widest
layer). Written by hand because no library runs madmom's peephole LSTMs (torch's LSTM has no
peepholes) or reads its layer objects. The arithmetic is madmom's; only its grouping changes:

- `ensemble_activation`: the input projections of a BLSTM layer for the whole sequence in one
  matrix product, then one step per frame for all networks and directions together (a batched
  (16, 25) x (25, 100) product for the recurrent weights); gates in madmom's order and with
  madmom's own activation functions (input, forget, cell, state, output). The output layers and
  the ensemble's averaging are madmom's own objects, called as madmom calls them.
- `network_output`: each `ConvolutionalLayer` (stride 1, `valid`) as one matrix product over the
  sliding windows (a true convolution: the kernel flipped, as scipy's convolve2d); every other
  layer is madmom's.
- `beat_and_bar_activations`: RNNBeatProcessor and RNNDownBeatProcessor frame the signal and take
  its STFT at the same three frame sizes with the same settings (only their filterbanks differ):
  each STFT is computed once for both (0.4 s of CPU per 30 s saved), bit for bit the same inputs.

Results differ from madmom's only by float32 rounding (sums taken in another order): beat and
downbeat activations within about 1e-5, key probabilities within 1e-6, the same beats, bars,
keys and chords on the test clips and real music (tests/test_features_madmom.py). A network of
another shape is run by madmom itself (`fast_enough` says which).
"""

from __future__ import annotations

import numpy as np


def _is_blstm_stack(network) -> bool:
    from madmom.ml.nn.layers import BidirectionalLayer, FeedForwardLayer, LSTMLayer

    *recurrent, last = network.layers
    return (
        bool(recurrent)
        and type(last) is FeedForwardLayer
        and all(type(layer) is BidirectionalLayer and type(layer.fwd_layer) is LSTMLayer and type(layer.bwd_layer) is LSTMLayer
                for layer in recurrent)
    )


def fast_enough(ensemble) -> bool:
    """Whether `ensemble_activation` can run this NeuralNetworkEnsemble (BLSTM stacks of one width
    and a feed-forward output, as madmom's beat and downbeat models); else madmom runs it."""
    networks = ensemble.processors[0].processors
    if not networks or not all(_is_blstm_stack(net) for net in networks):
        return False
    shapes = {tuple(layer.fwd_layer.cell.recurrent_weights.shape for layer in net.layers[:-1]) for net in networks}
    return len(shapes) == 1


def _gates(layer):
    return layer.input_gate, layer.forget_gate, layer.cell, layer.output_gate


def _peephole(gate, size: int) -> np.ndarray:
    weights = getattr(gate, "peephole_weights", None)
    return np.zeros(size, dtype=np.float32) if weights is None else weights


def blstm_hidden(networks, features: np.ndarray) -> list[np.ndarray]:
    """Per network, the (frames, 2 x units) output of its last bidirectional LSTM layer, all
    networks and both directions stepped through the frames together."""
    frames = features.shape[0]
    inputs = [features] * len(networks)  # each network's input to the current layer
    for level in range(len(networks[0].layers) - 1):
        # streams: network 0 forward, network 0 backward, network 1 forward, ...
        layers = [lstm for net in networks for lstm in (net.layers[level].fwd_layer, net.layers[level].bwd_layer)]
        streams, units = len(layers), layers[0].cell.bias.size
        projected = np.empty((frames, streams, 4, units), dtype=np.float32)  # x W + b of each gate, whole sequence
        for s, lstm in enumerate(layers):
            x = inputs[s // 2] if s % 2 == 0 else inputs[s // 2][::-1]  # the backward layer reads time reversed
            weights = np.concatenate([gate.weights for gate in _gates(lstm)], axis=1)  # (inputs, 4 units)
            bias = np.concatenate([np.broadcast_to(gate.bias, (units,)) for gate in _gates(lstm)])
            projected[:, s] = (np.dot(x, weights) + bias).reshape(frames, 4, units)
        recurrent = np.stack([np.concatenate([g.recurrent_weights for g in _gates(lstm)], axis=1) for lstm in layers])
        peep_in, peep_forget, peep_out = (np.stack([_peephole(getattr(lstm, name), units) for lstm in layers])
                                          for name in ("input_gate", "forget_gate", "output_gate"))
        sigmoid, tanh, output_fn = layers[0].input_gate.activation_fn, layers[0].cell.activation_fn, layers[0].activation_fn
        prev = np.stack([lstm.init for lstm in layers]).astype(np.float32)  # (streams, units)
        state = np.stack([lstm.cell_init for lstm in layers]).astype(np.float32)
        out = np.empty((frames, streams, units), dtype=np.float32)
        for t in range(frames):
            rec = np.matmul(prev[:, None, :], recurrent)[:, 0].reshape(streams, 4, units)  # prev R of each gate
            x = projected[t]
            input_gate = sigmoid(x[:, 0] + state * peep_in + rec[:, 0])
            forget_gate = sigmoid(x[:, 1] + state * peep_forget + rec[:, 1])
            cell = tanh(x[:, 2] + rec[:, 2])
            state = cell * input_gate + state * forget_gate
            output_gate = sigmoid(x[:, 3] + state * peep_out + rec[:, 3])
            prev = output_fn(state) * output_gate
            out[t] = prev
        inputs = [np.hstack((out[:, 2 * k], out[::-1, 2 * k + 1])) for k in range(len(networks))]
    return inputs


def ensemble_activation(ensemble, features: np.ndarray) -> np.ndarray:
    """What `ensemble(features)` returns (a madmom NeuralNetworkEnsemble of BLSTM networks)."""
    if not fast_enough(ensemble):
        return ensemble(features)
    parallel, average = ensemble.processors
    networks = parallel.processors
    hidden = blstm_hidden(networks, np.asarray(features, dtype=np.float32))
    return average([net.layers[-1](h).squeeze() for net, h in zip(networks, hidden)])


def convolution(layer, data: np.ndarray) -> np.ndarray:
    """madmom's ConvolutionalLayer.activate (stride 1, `valid`) as one product over the windows."""
    if data.ndim == 2:
        data = data[:, :, None]
    channels, maps, size_time, size_freq = layer.weights.shape
    windows = np.lib.stride_tricks.sliding_window_view(data, (size_time, size_freq), axis=(0, 1))  # (T', F', C, kt, kf)
    kernel = layer.weights[:, :, ::-1, ::-1]  # a convolution flips the kernel
    out = np.tensordot(windows, kernel, axes=([2, 3, 4], [0, 2, 3])).astype(np.float32)  # (T', F', maps)
    out += layer.bias
    if layer.activation_fn is not None:
        layer.activation_fn(out, out=out)
    return out


def network_output(network, data: np.ndarray) -> np.ndarray:
    """What `network(data)` returns (madmom's NeuralNetwork.process), convolutions by `convolution`."""
    from madmom.ml.nn.layers import ConvolutionalLayer

    data = np.array(data, ndmin=2)
    for layer in network.layers:
        if type(layer) is ConvolutionalLayer and layer.pad == "valid" and getattr(layer, "stride", 1) == 1:
            data = convolution(layer, data)
        else:
            data = layer(data)
    return data.squeeze()


def ensemble_output(ensemble, data: np.ndarray) -> np.ndarray:
    """What `ensemble(data)` returns for any madmom NeuralNetworkEnsemble, through the faster paths."""
    if fast_enough(ensemble):
        return ensemble_activation(ensemble, data)
    parallel, average = ensemble.processors
    return average([network_output(net, data) for net in parallel.processors])


def run_processor(sequential, data):
    """What `sequential(data)` returns for a madmom SequentialProcessor (RNNBeatProcessor,
    RNNDownBeatProcessor, CNNKeyRecognitionProcessor): its steps in order, networks by
    `ensemble_output`, everything else by madmom."""
    for step in sequential.processors:
        data = ensemble_output(step, data) if _is_ensemble(step) else step(data)
    return data


def _settings(step) -> tuple:
    """A processor's settings as a comparable key (arrays it caches are left out)."""
    return tuple(sorted((name, value) for name, value in vars(step).items() if not isinstance(value, np.ndarray) and value is not None))


def _stft_key(signal_step, frames, stft) -> tuple:
    # fps is how FramedSignalProcessor was asked for its hop; hop_size (441 samples for 100 fps at
    # 44.1 kHz) is what it frames with, and is in the key.
    framing = tuple(item for item in _settings(frames) if item[0] != "fps")
    return type(frames), framing, type(stft), _settings(stft), _settings(signal_step)


def beat_and_bar_activations(beat_processor, bar_processor, signal) -> tuple[np.ndarray, np.ndarray]:
    """`(beat_processor(signal), bar_processor(signal))` for RNNBeatProcessor and RNNDownBeatProcessor,
    each frame size's STFT computed once for both (their framing and STFT settings are the same at
    1024, 2048 and 4096 samples; only the filterbanks after them differ), networks by
    `ensemble_output`. A processor of another shape is run by `run_processor` alone."""
    stfts: dict[tuple, object] = {}
    out = []
    for processor in (beat_processor, bar_processor):
        preprocess, *after = processor.processors
        steps = getattr(preprocess, "processors", None)
        chains = getattr(steps[1], "processors", None) if steps is not None and len(steps) == 3 else None
        if chains is None or not all(len(getattr(chain, "processors", ())) >= 2 for chain in chains):
            out.append(run_processor(processor, signal))
            continue
        signal_step, _, stack = steps
        samples = signal_step(signal)
        parts = []
        for chain in chains:
            frames, stft, *rest = chain.processors
            key = _stft_key(signal_step, frames, stft)
            if key not in stfts:
                stfts[key] = stft(frames(samples))
            data = stfts[key]
            for step in rest:
                data = step(data)
            parts.append(data)
        data = stack(parts)
        for step in after:
            data = ensemble_output(step, data) if _is_ensemble(step) else step(data)
        out.append(data)
    return out[0], out[1]


def _is_ensemble(step) -> bool:
    from madmom.ml.nn import NeuralNetworkEnsemble

    return isinstance(step, NeuralNetworkEnsemble)
