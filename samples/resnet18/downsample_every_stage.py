# based on: correct_reference

# %% resnet_block
def resnet_block(num_channels, num_residuals, first_block=False):
    blk = nn.Sequential()
    for i in range(num_residuals):
        if i == 0:
            blk.add(Residual(num_channels, use_1x1conv=True, strides=2))  # every stage starts by halving
        else:
            blk.add(Residual(num_channels))
    return blk
