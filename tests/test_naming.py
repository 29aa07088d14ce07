"""A run's label and the network's sentence: one wording for the run list, the pages and the CLI."""

from core.base.config import AugmentConfig, ModelConfig, TrainConfig
from core.base.naming import describe, network_text, with_precision


def test_the_course_runs_label_names_only_what_it_has():
    assert describe(ModelConfig(), TrainConfig()) == "CNN 32-64-128 k3 · Dense 128 · drop 0.5 · adam 0.001 · 20 ep"


def test_every_choice_away_from_the_course_shows_in_the_label():
    model = ModelConfig(padding="same", batchnorm=True, dropout=0.25)
    train = TrainConfig(
        augment=AugmentConfig.course(),
        early_stopping=3,
        restore_best=False,
        train_fraction=0.2,
        seed=7,
        precision="bfloat16",
        learning_rate=3e-4,
    )
    assert describe(model, train) == (
        "CNN 32-64-128 k3 same BN · Dense 128 · drop 0.25 · adam 0.0003 · 20 ep · aug · ES3 · last weights"
        " · 20% data · seed 7 · bfloat16"
    )
    assert "last weights" not in describe(model, train.replace(restore_best=True))  # the best epoch's: the default


def test_a_transfer_runs_label_names_its_weights_and_fine_tuning():
    vgg = ModelConfig(model="vgg16", weights="offline", dense_units=64)
    assert describe(vgg, TrainConfig(fine_tune_epochs=5)).startswith("VGG16 (offline) + Dense 64, fine-tune 5 · drop")
    assert "fine-tune" not in describe(vgg, TrainConfig())


def test_precision_is_named_once_and_only_when_not_float32():
    assert with_precision("run", "bfloat16") == "run · bfloat16"
    assert with_precision("run · bfloat16", "bfloat16") == "run · bfloat16"  # never twice
    assert with_precision("run", "float32") == with_precision("run", "auto") == with_precision("run", None) == "run"


def test_the_networks_sentence():
    assert network_text(ModelConfig()) == (
        "CNN with 3 blocks (32-64-128 filters, 3×3 kernels, valid padding) + Dense 128, dropout 0.5"
        " · input 64×64 · 5 classes"
    )
    one = network_text(ModelConfig(blocks=1, batchnorm=True, num_classes=3))
    assert one.startswith("CNN with 1 block (32 filters, 3×3 kernels, valid padding, batch norm)")
    assert one.endswith("· 3 classes")
    assert network_text(ModelConfig(model="vgg16", weights="/x/w.h5")).startswith("VGG16 base (file weights) + Dense")


def test_class_weights_show_in_the_label_only_when_used():
    assert describe(ModelConfig(), TrainConfig(class_weight="balanced")).endswith(" · 20 ep · balanced classes")
    assert "classes" not in describe(ModelConfig(), TrainConfig())  # labels of older runs read as before
