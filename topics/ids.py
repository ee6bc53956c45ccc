"""Topic ids: public ints, stable across reclusters; -1 marks an outlier in raw labels and public ids."""

TopicId = int
OUTLIER: TopicId = -1
ThemeId = int  # theme ids: a sequence of their own, under the same rules
