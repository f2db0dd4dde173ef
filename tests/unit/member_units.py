"""The per-class member calls the unit tests make, through raygan.ensemble.training.train_units."""
from raygan.ensemble.training import class_unit, train_units


def train_member(data, cfg, run, *, class_name, class_index, member, data_weights=None):
    """One per-class member trained alone (train_units, pack=False); its manifest entry."""
    unit = class_unit(cfg, run, data, class_name=class_name, class_index=class_index, member=member,
                      data_weights=data_weights)
    [[entry]] = train_units([unit], cfg, run, pack=False)
    return entry


def train_members(units, cfg, run):
    """Per-class members (dicts) as one pack task (train_units, pack=True); their entries in order."""
    units = [class_unit(cfg, run, u["data"], class_name=u["class_name"], class_index=u["class_index"],
                        member=u["member"], data_weights=u.get("data_weights")) for u in units]
    return [e for made in train_units(units, cfg, run, pack=True) for e in made]
