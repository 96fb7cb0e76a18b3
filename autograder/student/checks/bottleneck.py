"""Visible checks of the bottleneck notebook (``source/bottleneck``).

Three exercises: the ``Bottleneck`` block, the small CIFAR-10 network
``small_resnet`` built from it, and the training loop ``train_adam``; plus an
ungraded self-check of the optional pre-activation block. The notebook's
visible test cells call ``check.<part>(obj)``; each name in :data:`PARTS` is
such a part. This module is the published student runtime, bound into the
grader's sandbox: it also holds the helpers the hidden parts' observers
(``autograder/sandboxed/observers/bottleneck.py``) share with these parts,
the stand-in ``Bottleneck`` spy and the data of ``train_adam``'s checks.

Each part observes the student's code and judges the observation (see
``parts.py`` for why the two are separate): observers only record JSON data
(shapes, layer settings, outputs with canonical weights, training histories
and weights), judges decide from the challenge and the observation alone and
never touch student code. Nothing here computes what a graded piece should
output: the visible parts judge shapes and histories, and the optional
self-check compares with fingerprints stored for its fixed challenge; the
plain-NumPy references live with the grader (``autograder/grade/hidden/``).
Each exercise is judged on its own: the ``small_resnet`` parts swap the
student's ``Bottleneck`` for a spy, so a bug in the block costs only the
block's marks. Layers are found by kind and shape, never by their
auto-generated names.
"""
import numpy as onp

from .. import gluon_walk as walk
from ..checking import CheckFailed, quiet_stderr
from ..lazy_mxnet import autograd, gluon, init, made_when_loaded, mnp, mxnet
from ..parts import Part, canonical, close, describe_error, expect, fail, secret_seed

EXPANSION = 4
# train_adam receives a network already initialised with this constant weight
# (biases zero), so that a loop which does not re-initialise it is told apart.
PRESET_WEIGHT = 0.01
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")
UNREADABLE = "the results your code produced could not be read as the expected kind of data."

# ((num_channels, strides, use_projection), input shape, output shape)
BOTTLENECK_DEMOS = [((4, 1, True), (2, 4, 8, 8), (2, 16, 8, 8)),
                    ((4, 2, True), (2, 16, 8, 8), (2, 16, 4, 4)),
                    ((4, 1, False), (2, 16, 8, 8), (2, 16, 8, 8))]
# More configurations: the fixed challenge of the hidden shape test and of the optional self-check.
BOTTLENECK_UNSEEN = [((3, 1, True), (2, 5, 9, 9), (2, 12, 9, 9)),
                     ((2, 2, True), (1, 8, 7, 7), (1, 8, 4, 4)),
                     ((5, 1, False), (2, 20, 6, 6), (2, 20, 6, 6)),
                     ((8, 2, True), (2, 6, 10, 10), (2, 32, 5, 5)),
                     ((6, 2, True), (1, 24, 5, 5), (1, 24, 3, 3))]


class JudgedPart(Part):
    """A Part whose judge turns any slip on malformed data into CheckFailed."""

    def judge(self, challenge, observation):
        try:
            with onp.errstate(all="ignore"):  # forged extremes must not warn on stderr
                self.decide(challenge, observation)
        except CheckFailed:
            raise
        except Exception:  # malformed (or forged) observation
            fail(UNREADABLE)

    def decide(self, challenge, observation):
        raise NotImplementedError


# ------------------------------------------------------------ observer side

def error_summary(error):
    """The most telling line of an error message (MXNet's start with a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Traceback", "File ", "["))] or lines or [""]
    last, kind = lines[-1], type(error).__name__
    if last.startswith(kind + ":"):
        last = last[len(kind) + 1:].strip()
    return f"{kind}: {last[:200]}"


def raised(error):
    """An exception as parts.observe_safely describes it."""
    return describe_error(error)


def try_run(block, shape, seed=0):
    """(output shape, None), or (None, error summary) when the block raised on its input."""
    try:
        return walk.shape_of(walk.run(block, shape, seed)), None
    except NotImplementedError:
        raise
    except Exception as error:
        return None, error_summary(error)


def conv_info(conv):
    return {"kernel": [int(n) for n in walk.kernel(conv)], "stride": [int(n) for n in walk.stride(conv)],
            "pad": [int(n) for n in walk.padding(conv)], "channels": int(conv._kwargs["num_filter"]),
            "shape": [int(n) for n in conv.weight.shape], "bias": conv.bias is not None}


def block_info(block):
    """Every convolution's settings and weight shape, and the sizes of the batch norms."""
    return {"convs": [conv_info(conv) for conv in walk.convs(block)],
            "batch_norms": [int(bn.gamma.shape[0]) for bn in walk.batch_norms(block)]}


def block_name(num_channels, strides, use_projection, cls="Bottleneck"):
    """How a case is written in messages; ``strides=None`` stands for the signature's defaults."""
    if strides is None:
        return f"{cls}({num_channels})"
    strides = tuple(strides) if isinstance(strides, list) else strides
    return f"{cls}({num_channels}, strides={strides}, use_projection={use_projection})"


def build_block(Bottleneck, num_channels, strides, use_projection, cls="Bottleneck"):
    """The block for a case; ``strides=None`` calls ``Bottleneck(num_channels)`` with the defaults."""
    try:
        if strides is None:
            return Bottleneck(num_channels)
        return Bottleneck(num_channels, strides=strides, use_projection=use_projection)
    except TypeError as error:
        fail(f"{block_name(num_channels, strides, use_projection, cls)} could not be created ({error}). "
             f"Keep the signature {cls}(num_channels, strides=1, use_projection=True).")


# ------------------------------------------------------------- judge side

def diagnose_failed_run(layers, c, s, proj, name, error):
    """The block raised on its input; explain the usual cause from the layers'
    settings, which are known before any data has passed."""
    out = EXPANSION * c
    convs = layers["convs"]
    for conv in convs:
        if conv["kernel"] == [3, 3] and conv["pad"] != [1, 1]:
            fail(f"{name} raised an error: its 3x3 convolution needs padding=1 to keep height and width, "
                 "so that the main path and the shortcut can be added.")
    ones = [conv for conv in convs if conv["kernel"] == [1, 1]]
    wide = [conv for conv in ones if conv["channels"] == out]
    if not wide:
        fail(f"{name} raised an error, and none of its 1x1 convolutions has 4 * num_channels = "
             f"{out} output channels: the last convolution (and the projection) must expand the channels 4x.")
    if proj and s != 1 and not any(conv["stride"] == [s, s] for conv in wide):
        fail(f"{name} raised an error: the main path halves height and width but the shortcut does "
             f"not. The projection shortcut must use strides={s}, like the first 1x1 convolution.")
    if proj and len(wide) < 2:
        fail(f"{name} raised an error; it should have a 1x1 projection convolution with {out} "
             "output channels on the shortcut.")
    fail(f"{name} raised {error}. The main path and the shortcut must have the same shape where they "
         "are added.")


# --------------------------------------------------------------- Bottleneck

def random_shape_cases(rng, kinds):
    """[num_channels, strides, use_projection, input shape] for each (use_projection, strides) kind.

    Every draw has the same classes of case, only the values are secret: a
    projection's input never has 4 * num_channels channels, a block without
    one gets exactly 4 * num_channels, and the stride-2 cases alternate odd
    and even sides (the odd ones are rounded up)."""
    cases, strided = [], 0
    for proj, s in kinds:
        c = int(rng.integers(2, 9))
        c_in = int(rng.choice([n for n in range(1, 33) if n != EXPANSION * c])) if proj else EXPANSION * c
        if s == 2:
            side = 2 * int(rng.integers(2, 6)) + 1 - strided % 2
            strided += 1
        else:
            side = int(rng.integers(3, 12))
        cases.append([c, s, proj, [int(rng.integers(1, 4)), c_in, side, side]])
    return cases


def fixed_shape_cases(table):
    return [[c, s, p, list(x_shape)] for (c, s, p), x_shape, _ in table]


def observe_shapes(Bottleneck, challenge):
    """Each case's output shape, or the error and the layers' settings when the block raised."""
    results = []
    for c, s, proj, x_shape in challenge["cases"]:
        blk = build_block(Bottleneck, c, s, proj)
        shape, error = try_run(blk, x_shape)
        results.append({"shape": shape} if error is None else {"error": error, "layers": block_info(blk)})
    return {"results": results}


class BottleneckDemoShapes(JudgedPart):
    name = "bottleneck_demo_shapes"
    description = "Bottleneck expands the channels 4x, keeps the size, or halves it with strides=2"
    kinds = [(True, 1), (True, 2), (False, 1)]

    def challenge(self, rng=None):
        if rng is None:
            return {"cases": fixed_shape_cases(BOTTLENECK_DEMOS)}
        return {"cases": random_shape_cases(rng, self.kinds)}

    observe = staticmethod(observe_shapes)

    def decide(self, challenge, observation):
        for (c, s, proj, x_shape), got in zip(challenge["cases"], observation["results"], strict=True):
            what = f"{block_name(c, s, proj)} on an input of shape {tuple(x_shape)}"
            if "error" in got:
                diagnose_failed_run(got["layers"], c, s, proj, what, got["error"])
            want = [x_shape[0], EXPANSION * c, walk.out_side(x_shape[2], s), walk.out_side(x_shape[3], s)]
            expect(got["shape"] == want,
                   f"{what} gave output shape {tuple(got['shape'])}, expected {tuple(want)}.")


# ------------------------------------------------------------- small_resnet

@made_when_loaded
def _block_spy_base():
    """The stand-in's class, made on first use (it subclasses a Gluon block: MXNet is imported then)."""
    class _BlockSpy(gluon.nn.HybridBlock):
        """Stands in for the student's Bottleneck: remembers its arguments and
        changes the shape exactly as a correct block would (one strided 1x1
        convolution to 4 * num_channels). A HybridBlock, so it fits in both
        Sequential and HybridSequential containers."""
        calls = None
        instances = None

        def __init__(self, num_channels, strides=1, use_projection=True, **kwargs):
            super().__init__(**kwargs)
            type(self).calls.append((num_channels, strides, use_projection))
            type(self).instances.append(self)
            self.proj = gluon.nn.Conv2D(EXPANSION * num_channels, 1, strides=strides)

        def hybrid_forward(self, F, X):
            return self.proj(X)

    return _BlockSpy


def block_spy():
    return type("Bottleneck", (_block_spy_base(),), {"calls": [], "instances": []})


def spied(small_resnet, *args):
    spy = block_spy()
    with walk.replaced(small_resnet, Bottleneck=spy):
        net = small_resnet(*args)
    return net, spy


class SmallResnetDemo(JudgedPart):
    name = "small_resnet_demo"
    description = "small_resnet() maps a (2, 3, 32, 32) batch of images to (2, 10) class scores"

    def challenge(self, rng=None):
        if rng is None:
            return {"inputs": [[2, 3, 32, 32]]}
        return {"inputs": [[int(n), 3, int(side), int(side)]
                           for n, side in zip(rng.integers(1, 9, size=3), rng.integers(8, 41, size=3))]}

    def observe(self, small_resnet, challenge):
        net, _ = spied(small_resnet)
        return {"shapes": [walk.shape_of(walk.run(net, shape)) for shape in challenge["inputs"]]}

    def decide(self, challenge, observation):
        for (n, _, height, width), got in zip(challenge["inputs"], observation["shapes"], strict=True):
            expect(got == [n, 10], f"small_resnet() on a batch of {n} images of {height}x{width} gave output "
                                   f"shape {tuple(got)}, expected {(n, 10)}.")


# --------------------------------------------------------------- train_adam

def easy_data(seeds, n_train, n_test, features, classes, spread=0.6):
    """Easy data, plain NumPy: one Gaussian cluster per class, the centres far apart.
    ((X_train, y_train), (X_test, y_test)), X rounded to float32 as the loaders hold it."""
    rng = onp.random.default_rng([int(n) for n in seeds])
    q, _ = onp.linalg.qr(rng.normal(size=(features, features)))
    centres = 3.0 * q[:classes]

    def make(n):
        y = rng.integers(0, classes, n)
        X = centres[y] + rng.normal(scale=spread, size=(n, features))
        return X.astype(onp.float32).astype(onp.float64), y

    return make(n_train), make(n_test)


class _Batches:
    """Observer side: (X, y) mini-batches over the challenge's data, as a DataLoader gives them
    (Gluon's DataLoader costs a garbage collection per loader, which is most of this check's time)."""

    def __init__(self, X, y, batch_size, shuffle):
        self.X, self.y = mnp.array(X, dtype="float32"), mnp.array(y, dtype="int32")
        self.batch_size, self.shuffle = int(batch_size), shuffle
        self.rng = onp.random.default_rng(len(y))

    def __len__(self):
        return -(-int(self.y.shape[0]) // self.batch_size)

    def __iter__(self):
        n = int(self.y.shape[0])
        order = self.rng.permutation(n) if self.shuffle else onp.arange(n)
        for start in range(0, n, self.batch_size):
            index = mnp.array(order[start:start + self.batch_size], dtype="int64")
            yield self.X[index], self.y[index]


def _loaders(data, batch_size):
    """Observer side: training batches (shuffled) and test batches over the challenge's data."""
    (X, y), (X_test, y_test) = data
    return _Batches(X, y, batch_size, shuffle=True), _Batches(X_test, y_test, batch_size, shuffle=False)


@made_when_loaded
def _recorder_class():
    """The recording classifier's class, made on first use (a Gluon block: MXNet is imported then)."""
    class _Recorder(gluon.nn.Block):
        """A one-layer classifier that remembers its parameters as they were at
        the first forward pass made while training (after any re-initialisation)."""

        def __init__(self, classes, features, **kwargs):
            super().__init__(**kwargs)
            self.out = gluon.nn.Dense(classes, in_units=features)
            self.first = None

        def forward(self, X):
            if self.first is None and autograd.is_training():
                self.first = self.weights()
            return self.out(X)

        def weights(self):
            return [walk.get(p).tolist() for p in (self.out.weight, self.out.bias)]

    return _Recorder


def _record_history(history):
    """What the judge needs to know about a returned history, as JSON data."""
    if not isinstance(history, dict):
        return {"type": type(history).__name__}
    values = {}
    for key in HISTORY_KEYS:
        if key in history:
            try:
                values[key] = [float(v) for v in history[key]][:10_000]
            except (TypeError, ValueError):
                values[key] = None
    return {"type": "dict", "values": values}


def train(train_adam, spec, features, classes, data):
    """Run the student's train_adam on a fresh recorder; (history record, net).

    The recorder arrives initialised with constant weights (PRESET_WEIGHT), as a
    network the notebook built and maybe ran before: train_adam must initialise
    it itself (with force_reinit=True), which the hidden checks verify."""
    net = _recorder_class()(classes, features)
    net.initialize(init.Constant(PRESET_WEIGHT), force_reinit=True)
    train_iter, test_iter = _loaders(data, spec["batch_size"])
    history = train_adam(net, train_iter, test_iter, spec["epochs"], spec["lr"], mxnet.cpu())
    return _record_history(history), net


def judge_history(record, num_epochs):
    """The history's values, once they are one finite number per epoch and key."""
    expect(record["type"] == "dict", f"train_adam should return a dict, returned {record['type']}.")
    missing = [key for key in HISTORY_KEYS if key not in record["values"]]
    expect(not missing, f"the history lacks the keys {missing}; it needs {list(HISTORY_KEYS)}.")
    values = {}
    for key in HISTORY_KEYS:
        found = record["values"][key]
        if not isinstance(found, list) or not all(isinstance(v, (int, float)) for v in found):
            fail(f"history['{key}'] should be a list of numbers, one per epoch.")
        values[key] = [float(v) for v in found]
        expect(len(values[key]) == num_epochs,
               f"history['{key}'] holds {len(values[key])} values after {num_epochs} epochs; "
               "append one value per epoch.")
        expect(all(onp.isfinite(values[key])), f"history['{key}'] holds values that are not finite.")
        if key.endswith("acc"):
            expect(all(0 <= v <= 1 for v in values[key]),
                   f"history['{key}'] holds {values[key]}; accuracies are fractions between 0 and 1.")
        else:
            expect(all(v >= 0 for v in values[key]), f"history['{key}'] holds negative losses.")
    return values


def trained_weights(found, classes, features):
    """The recorded (weight, bias) of the one-layer classifier, as arrays of the right shapes."""
    weight, bias = (onp.asarray(v, dtype=float) for v in found)
    expect(weight.shape == (classes, features) and bias.shape == (classes,) and onp.all(onp.isfinite(weight))
           and onp.all(onp.isfinite(bias)), UNREADABLE)
    return weight, bias


def scores(X, weight, bias):
    return X @ weight.T + bias


def cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return onp.log(onp.exp(z).sum(axis=1)) - z[onp.arange(len(y)), y]


def judge_validation(values, final, test_data, classes, features):
    """The last epoch's validation figures must be those of the trained network on test_iter."""
    X_test, y_test = test_data
    z = scores(X_test, *trained_weights(final, classes, features))
    accuracy = float(onp.mean(z.argmax(axis=1) == y_test))
    loss = float(onp.mean(cross_entropy(z, y_test)))
    expect(abs(values["val_acc"][-1] - accuracy) < 1e-6,
           f"the last validation accuracy is {values['val_acc'][-1]:.4f}, but the trained network scores "
           f"{accuracy:.4f} on test_iter: measure it on test_iter after the epoch's training.")
    expect(abs(values["val_loss"][-1] - loss) < 1e-3 * max(1.0, loss),
           f"the last validation loss is {values['val_loss'][-1]:.4f}, but the trained network's mean "
           f"cross-entropy on test_iter is {loss:.4f}: measure it on test_iter after the epoch's "
           "training, as the mean loss per example.")


class TrainAdamHistory(JudgedPart):
    """The history's form, and its last validation figures recomputed from the trained
    weights on data drawn secretly: a history written by hand cannot know them."""
    name = "train_adam_history"
    description = ("train_adam returns a history with one train/validation loss and accuracy per epoch, "
                   "the validation ones measured on test_iter")

    def challenge(self, rng=None):
        if rng is None:
            return {"seed": 0, "features": 4, "classes": 3, "n_train": 48, "n_test": 24,
                    "spec": {"batch_size": 16, "epochs": 2, "lr": 0.01}}
        return {"seed": secret_seed(rng), "features": int(rng.integers(4, 7)), "classes": int(rng.integers(2, 5)),
                "n_train": int(rng.integers(24, 65)), "n_test": int(rng.integers(12, 33)),
                "spec": {"batch_size": int(rng.integers(8, 17)), "epochs": int(rng.integers(1, 4)),
                         "lr": float(rng.uniform(0.005, 0.02))}}

    @staticmethod
    def _data(challenge):
        return easy_data([challenge["seed"]], challenge["n_train"], challenge["n_test"],
                         challenge["features"], challenge["classes"])

    def observe(self, train_adam, challenge):
        record, net = train(train_adam, challenge["spec"], challenge["features"], challenge["classes"],
                            self._data(challenge))
        return {"history": record, "final": net.weights()}

    def decide(self, challenge, observation):
        values = judge_history(observation["history"], challenge["spec"]["epochs"])
        judge_validation(values, observation["final"], self._data(challenge)[1], challenge["classes"],
                         challenge["features"])


# ------------------------------------------- optional: pre-activation block

def fingerprint(output):
    """Eight fixed random projections of an output: as telling as the output, and small enough to store."""
    values = onp.asarray(output, dtype=float).ravel()
    return onp.random.default_rng(values.size).standard_normal((8, values.size)) @ values


# The self-check's fixed cases, [num_channels, use_projection, input channels, side], and for each the
# fingerprints of the accepted outputs (None) and of usual mistakes, with canonical weights for
# PREACT_SEED (computed in plain NumPy; tests/test_bottleneck_checks.py recomputes them). A projection
# may read the pre-activated input (as Gluon's model zoo does) or the raw input: both are accepted.
PREACT_SEED = 12345
PREACT_CASES = [[3, True, 5, 6], [3, False, 12, 6]]
NO_FINAL_RELU = ("there is no ReLU after the addition in a pre-activation block: the next block's BatchNorm "
                 "and ReLU come first")
NO_SHORTCUT = "the shortcut is not added"
PREACT_FINGERPRINTS = [
    [
        (None, [9.984976, 6.958814, 3.700462, -29.29573, 22.71771, -14.43886, -16.36683, 0.3732392]),
        (None, [-20.64368, 13.55959, -8.743471, -26.83605, 27.59764, -25.99161, 41.4411, 3.941105]),
        (NO_FINAL_RELU, [-7.398779, 4.030674, 19.62887, -15.1826, -1.786987, -16.80387, 3.818247, 2.697739]),
        (NO_SHORTCUT, [-11.52173, 6.841082, -8.336195, -4.809297, 14.41643, 2.898598, 3.567157, -7.717705]),
    ],
    [
        (None, [20.54252, 60.77108, -32.97806, -11.1842, 23.58486, 11.57118, -22.88438, -19.45038]),
        (NO_FINAL_RELU, [-2.766298, 30.23387, 11.77296, -2.945608, 0.08012277, 4.772852, -7.407151, -4.323147]),
        (NO_SHORTCUT, [-12.79063, 7.30647, -3.604812, -20.63388, 8.478984, 5.866217, 4.631776, -4.640888]),
    ],
]


class PreactSelfCheck(JudgedPart):
    """Ungraded: 'not attempted' for the untouched stub, else judged on its fixed challenge only,
    against stored fingerprints: the published runtime holds no forward pass of the block."""
    name = "preact_self_check"
    description = ("PreActBottleneck (optional) keeps the shapes and computes BN -> ReLU -> conv "
                   "three times, plus the shortcut")
    cls = "PreActBottleneck"

    def challenge(self, rng=None):
        return {"seed": PREACT_SEED, "shapes": fixed_shape_cases(BOTTLENECK_DEMOS + BOTTLENECK_UNSEEN[:3]),
                "cases": PREACT_CASES}

    def observe(self, PreActBottleneck, challenge):
        try:
            PreActBottleneck(4)
        except NotImplementedError:
            return {"attempted": False}
        except Exception:
            pass  # the observation below records it
        seed, shapes, outputs = challenge["seed"], [], []
        for c, s, p, x_shape in challenge["shapes"]:
            shapes.append(walk.shape_of(walk.run(build_block(PreActBottleneck, c, s, p, self.cls), x_shape)))
        for c, proj, c_in, side in challenge["cases"]:
            blk = build_block(PreActBottleneck, c, 1, proj, self.cls)
            x = canonical(seed, "input", (2, c_in, side, side))
            walk.run(blk, x.shape, seed)  # initialises to the seed's canonical weights
            outputs.append({"output": walk.forward(blk, x).asnumpy().tolist(), "layers": block_info(blk)})
        return {"attempted": True, "shapes": shapes, "outputs": outputs}

    def decide(self, challenge, got):
        if got["attempted"] is False:
            return
        for (c, s, p, x_shape), shape in zip(challenge["shapes"], got["shapes"], strict=True):
            want = [x_shape[0], EXPANSION * c, walk.out_side(x_shape[2], s), walk.out_side(x_shape[3], s)]
            expect(shape == want, f"{block_name(c, s, p, self.cls)} on an input of shape {tuple(x_shape)} gave "
                                  f"output shape {tuple(shape)}, expected {tuple(want)}.")
        for (c, proj, c_in, side), found, stored in zip(challenge["cases"], got["outputs"], PREACT_FINGERPRINTS,
                                                        strict=True):
            label = f"{block_name(c, 1, proj, self.cls)} on a {c_in}-channel input"
            sizes = sorted(int(n) for n in found["layers"]["batch_norms"])
            expect(sizes == sorted([c_in, c, c]),
                   f"{label} should hold three BatchNorm layers, over {c_in} (the input), {c} and {c} channels; "
                   f"found them over {sizes}.")
            output = onp.asarray(found["output"], dtype=float)
            expect(output.shape == (2, EXPANSION * c, side, side),
                   f"{label} gave output shape {output.shape}, expected {(2, EXPANSION * c, side, side)}.")
            seen = fingerprint(output)
            for mistake, want in stored:
                if close(seen, want):
                    expect(mistake is None, f"in {label}, {mistake}.")
                    break
            else:
                fail(f"{label} does not compute main(X) + shortcut(X) with main path BN -> ReLU -> conv1x1 -> "
                     "BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1 (keep Gluon's defaults: convolutions "
                     "with biases).")

    def check(self, PreActBottleneck):
        with quiet_stderr():
            try:
                PreActBottleneck(4)
                attempted = True
            except NotImplementedError:
                attempted = False
            except Exception:
                attempted = True  # the check reports it
        if not attempted:
            print("PreActBottleneck not attempted (optional, not graded).")
            return
        super().check(PreActBottleneck)


PARTS = {part.name: part for part in [
    BottleneckDemoShapes(), SmallResnetDemo(), TrainAdamHistory(), PreactSelfCheck()]}

# What the sandboxed worker runs beside the student's code, by part name (see autograder/sandboxed/).
OBSERVERS = {name: part.observe for name, part in PARTS.items()}

# The names the notebook's visible test cells call: check.<name>(obj).
globals().update({name: part.check for name, part in PARTS.items()})
