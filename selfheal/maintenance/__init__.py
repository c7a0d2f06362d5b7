"""Repository upkeep that spans components: finding and repairing what crashed processes left."""
