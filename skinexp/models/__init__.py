"""Model builders: `build_unet(model_cfg, image_size) -> keras.Model`."""
