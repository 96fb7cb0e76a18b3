# based on: correct_reference
# Typical mistake: the first block 'keeps' 64 channels, so it is given an
# identity shortcut, although its output has 4 * 64 = 256 channels.
# Expected: small_resnet_assembly and small_resnet_counts fail; the Bottleneck
# cells, small_resnet_visible, small_resnet_behaviour and train_adam pass.

# %% small_resnet
def small_resnet(num_classes=10):
    """A small bottleneck ResNet for 32x32 colour images."""
    net = nn.Sequential()
    net.add(nn.Conv2D(64, kernel_size=3, strides=1, padding=1),
            nn.BatchNorm(), nn.Activation('relu'),
            Bottleneck(64, use_projection=False),
            Bottleneck(64, use_projection=False),
            Bottleneck(128, strides=2),
            Bottleneck(128, use_projection=False),
            nn.GlobalAvgPool2D(),
            nn.Dense(num_classes))
    return net
