"""maskipy.converters: Keras model → checked int8 TFLite bundle, and deployment to the Pi."""
