import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


class WSSSDataSample(SegDataSample):
    """A :class:`mmseg.structures.SegDataSample` with the WSSS fields.

    Data fields (besides MMSeg's ``gt_sem_seg``, ``pred_sem_seg``, ``seg_logits``;
    ``gt_sem_seg`` (PixelData, long, (1, H, W): 0 = background, ``c + 1`` =
    foreground class ``c``, 255 = ignore) is also GAIN^p_ext's pixel supervision,
    see below):

    - ``gt_label`` (Tensor, float32, shape (K,)): multi-hot image-level label over the
      K foreground classes; index ``c`` is segmentation label ``c + 1``.
    - ``gt_score`` (Tensor, float32, shape (K,)): the same multi-hot vector under the
      name MMPretrain's multi-label metrics read (MMPretrain's ``gt_label`` holds
      class indices), packed by ``PackWSSSInputs``.
    - ``gt_saliency`` (PixelData, float32 in [0, 1], shape (1, H, W)): saliency map
      aligned with the input, when the pipeline loads one.
    - ``gt_box_mask`` (PixelData, uint8 or float in {0, 1}, shape (K, H, W)):
      channel ``c`` is 1 inside any bounding box of foreground class ``c`` (the
      ``B^c`` of GAIN's box loss, Li et al., TPAMI 2020, Eq. 9).

    Extra supervision of GAIN_ext (:class:`~mmwsss.models.heads.GAINHead` with
    ``ext_supervision``): a pixel-labelled image carries ``gt_sem_seg``; a
    box-labelled image carries ``gt_box_mask`` together with ``gt_saliency`` (the
    foreground prior ``S`` of Eq. 9); the other training images carry neither.
    The maps are at the network-input size before padding (``img_shape``),
    top-left aligned in the padded batch like the image; a map the data
    preprocessor padded (``gt_sem_seg``, with 255) is cropped to ``img_shape``.
    - ``gt_attention`` (PixelData, float32 in [0, 1], shape (K, H, W)): soft attention
      targets over the K foreground classes (e.g. OAA cumulative maps) aligned with the
      augmented, unpadded input, for the integral attention model (OAA+).
    - ``prev_attention`` (PixelData, float32 in [0, 1], shape (K', h, w)): set by a
      training hook before the step (OAA++: the last accepted maps of the image's K'
      ground-truth classes, warped into the current augmentation) and read by an
      input-erasing batch augment (:class:`~mmwsss.models.layers.AttentionDrop`).

    Meta fields (``metainfo``):

    - ``img_id`` (str, the image file stem) is the identity of the image for every
      stage (online state, CAM files, pseudo labels); never a loader index.
    - ``batch_input_shape`` ((H, W) of the padded network input): stamped by
      :class:`~mmwsss.models.WSSSDataPreProcessor`.
    - ``drop_rand`` (float in [0, 1)): the random number of OAA++'s Alg. 1 for this
      image and epoch, given by the hook so that drops survive ``--resume``.
    - ``attention_dropped`` (bool), ``dropped_ratio`` (float): what the attention
      drop did to the image (for the hook's statistics).

    :data:`TRAIN_META_KEYS` lists the meta keys of the training-step protocol
    (``docs/extending.md``).
    """
    TRAIN_META_KEYS = ('img_id', 'batch_input_shape', 'drop_rand',
                       'attention_dropped', 'dropped_ratio')

    @property
    def gt_label(self) -> torch.Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value: torch.Tensor) -> None:
        self.set_field(value, '_gt_label', dtype=torch.Tensor)

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def gt_score(self) -> torch.Tensor:
        return self._gt_score

    @gt_score.setter
    def gt_score(self, value: torch.Tensor) -> None:
        self.set_field(value, '_gt_score', dtype=torch.Tensor)

    @gt_score.deleter
    def gt_score(self) -> None:
        del self._gt_score

    @property
    def gt_saliency(self) -> PixelData:
        return self._gt_saliency

    @gt_saliency.setter
    def gt_saliency(self, value: PixelData) -> None:
        self.set_field(value, '_gt_saliency', dtype=PixelData)

    @gt_saliency.deleter
    def gt_saliency(self) -> None:
        del self._gt_saliency

    @property
    def gt_box_mask(self) -> PixelData:
        return self._gt_box_mask

    @gt_box_mask.setter
    def gt_box_mask(self, value: PixelData) -> None:
        self.set_field(value, '_gt_box_mask', dtype=PixelData)

    @gt_box_mask.deleter
    def gt_box_mask(self) -> None:
        del self._gt_box_mask

    @property
    def gt_attention(self) -> PixelData:
        return self._gt_attention

    @gt_attention.setter
    def gt_attention(self, value: PixelData) -> None:
        self.set_field(value, '_gt_attention', dtype=PixelData)

    @gt_attention.deleter
    def gt_attention(self) -> None:
        del self._gt_attention

    @property
    def prev_attention(self) -> PixelData:
        return self._prev_attention

    @prev_attention.setter
    def prev_attention(self, value: PixelData) -> None:
        self.set_field(value, '_prev_attention', dtype=PixelData)

    @prev_attention.deleter
    def prev_attention(self) -> None:
        del self._prev_attention
