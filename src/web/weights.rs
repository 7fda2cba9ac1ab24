//! The weights choice of the integer path: the served 8-bit model, or the 7-bit model of
//! `ivit quantize --weight-bits 7`. The relaxed-SIMD package runs 7-bit weights with one
//! relaxed dot product per 16 products instead of two, at a lower logit SQNR (2.3 dB less
//! for ViT-Ti in the README's accuracy table).

use yew::prelude::*;

/// One integer model the page can load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct IntWeights {
    /// Text of the option.
    pub label: &'static str,
    /// URL of the `.ivit` file on the local server.
    pub url: &'static str,
}

/// The integer models, the default first.
pub(super) const INT_WEIGHTS: [IntWeights; 2] = [
    IntWeights {
        label: "8-bit weights",
        url: "assets/models/vit_tiny_patch16_224.ivit",
    },
    IntWeights {
        label: "7-bit weights (faster with relaxed SIMD)",
        url: "assets/models/vit_tiny_patch16_224.w7.ivit",
    },
];

/// Renders the weights selector with option `selected` chosen. `onselect` gets the index
/// of a newly chosen option.
pub(super) fn view_weights_choice(selected: usize, enabled: bool, onselect: Callback<usize>) -> Html {
    let onchange = Callback::from(move |event: Event| {
        let Some(select) = event.target_dyn_into::<web_sys::HtmlSelectElement>() else {
            return;
        };
        if let Ok(index) = select.value().parse::<usize>() {
            onselect.emit(index);
        }
    });
    let options = INT_WEIGHTS.iter().enumerate().map(|(index, weights)| {
        html! {
            <option value={index.to_string()} selected={index == selected}>{ weights.label }</option>
        }
    });

    html! {
        <label class="weights">
            { "integer model: " }
            <select data-testid="int-weights" disabled={!enabled} onchange={onchange}>
                { for options }
            </select>
        </label>
    }
}
