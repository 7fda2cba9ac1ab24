//! ImageNet-1k class names and WordNet ids, and top-k selection over logits.

/// The committed class list: index, WordNet id, short name, synonyms (tab-separated).
const CLASSES_TSV: &str = include_str!("../assets/imagenet1k_classes.tsv");

/// One ImageNet-1k class.
#[derive(Debug, Clone)]
pub struct ImageNetClass {
    pub index: usize,
    /// WordNet id such as `n01440764`.
    pub wnid: String,
    /// Short human-readable name such as `tench`.
    pub name: String,
}

/// Parses the committed ImageNet-1k class list (1000 entries, in class-index order).
pub fn imagenet_classes() -> Vec<ImageNetClass> {
    CLASSES_TSV
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let index = fields.next()?.trim().parse().ok()?;
            let wnid = fields.next()?.trim().to_string();
            let name = fields.next()?.trim().to_string();
            Some(ImageNetClass { index, wnid, name })
        })
        .collect()
}

/// Returns the class index of a WordNet id (`n01440764` -> 0), if it is an ImageNet-1k class.
pub fn class_of_wnid(classes: &[ImageNetClass], wnid: &str) -> Option<usize> {
    classes.iter().find(|class| class.wnid == wnid).map(|class| class.index)
}

/// Returns the WordNet id at the start of `text` (`n01440764_tench.JPEG` -> `n01440764`):
/// an `n` followed by eight digits, then the end or a character that is not a digit.
pub fn leading_wnid(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let is_wnid = bytes.len() >= 9
        && bytes[0] == b'n'
        && bytes[1..9].iter().all(u8::is_ascii_digit)
        && bytes.get(9).map_or(true, |b| !b.is_ascii_digit());
    is_wnid.then(|| &text[..9])
}

/// Finds the label of an image from its path relative to the data set root, as `ivit eval`
/// does when the folder has no `labels.json`: a parent folder named by a WordNet id (the
/// ImageNet validation layout read by torchvision's `ImageFolder`), else a WordNet id at
/// the start of the file name.
pub fn label_from_relative_path(classes: &[ImageNetClass], relative_path: &str) -> Option<usize> {
    let mut components: Vec<&str> = relative_path.split(['/', '\\']).filter(|c| !c.is_empty()).collect();
    let file_name = components.pop()?;

    let from_parent = components.iter().rev().find_map(|dir| {
        let wnid = leading_wnid(dir).filter(|wnid| wnid.len() == dir.len())?;
        class_of_wnid(classes, wnid)
    });
    from_parent.or_else(|| class_of_wnid(classes, leading_wnid(file_name)?))
}

/// Returns the indices of the `k` largest values, largest first; ties keep the lower index
/// first, so the order is deterministic.
pub fn top_k<T: PartialOrd + Copy>(values: &[T], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        values[b]
            .partial_cmp(&values[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    order.truncate(k);
    order
}

/// Converts logits to probabilities with a numerically stable softmax (display only).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|&e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_list_has_1000_ordered_entries() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), 1000);
        for (i, class) in classes.iter().enumerate() {
            assert_eq!(class.index, i);
        }
        assert_eq!(classes[0].wnid, "n01440764");
        assert_eq!(classes[0].name, "tench");
        assert_eq!(class_of_wnid(&classes, "n01443537"), Some(1));
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        let values = [0.1f32, 0.9, 0.5, 0.9, -1.0];
        assert_eq!(top_k(&values, 3), vec![1, 3, 2]);
        assert_eq!(top_k(&values, 10).len(), 5);
    }

    #[test]
    fn labels_from_folder_and_file_names() {
        let classes = imagenet_classes();
        assert_eq!(label_from_relative_path(&classes, "n01443537/ILSVRC2012_val_00000001.JPEG"), Some(1));
        assert_eq!(label_from_relative_path(&classes, "val/n01443537/x.JPEG"), Some(1));
        assert_eq!(label_from_relative_path(&classes, "n01440764_tench.JPEG"), Some(0));
        assert_eq!(label_from_relative_path(&classes, "photos/n01484850_shark.png"), Some(2));
        assert_eq!(label_from_relative_path(&classes, "n014407640.JPEG"), None);
        assert_eq!(label_from_relative_path(&classes, "cat.png"), None);
        assert_eq!(label_from_relative_path(&classes, "n99999999_unknown.JPEG"), None);
    }
}
