"""The interactive viewer and the headless renderer (GL, ImGui). Uses models/, never trains."""
