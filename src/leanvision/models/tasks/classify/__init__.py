"""Classification models: timm bodies by name with S1's expanded head (`classifier`, `variants`)."""
