import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


class WSSSDataSample(SegDataSample):
    """A :class:`mmseg.structures.SegDataSample` with the WSSS fields.

    Data fields (besides MMSeg's ``gt_sem_seg``, ``pred_sem_seg``, ``seg_logits``):

    - ``gt_label`` (Tensor, float32, shape (K,)): multi-hot image-level label over the
      K foreground classes; index ``c`` is segmentation label ``c + 1``.
    - ``gt_saliency`` (PixelData, float32 in [0, 1], shape (1, H, W)): saliency map
      aligned with the input, when the pipeline loads one.
    - ``gt_attention`` (PixelData, float32 in [0, 1], shape (K, H, W)): soft attention
      targets over the K foreground classes (e.g. OAA cumulative maps) aligned with the
      augmented, unpadded input, for the integral attention model (OAA+).

    Meta fields: ``img_id`` (str, the image file stem) is the identity of the image
    for every stage (online state, CAM files, pseudo labels); never a loader index.
    """

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
    def gt_saliency(self) -> PixelData:
        return self._gt_saliency

    @gt_saliency.setter
    def gt_saliency(self, value: PixelData) -> None:
        self.set_field(value, '_gt_saliency', dtype=PixelData)

    @gt_saliency.deleter
    def gt_saliency(self) -> None:
        del self._gt_saliency

    @property
    def gt_attention(self) -> PixelData:
        return self._gt_attention

    @gt_attention.setter
    def gt_attention(self, value: PixelData) -> None:
        self.set_field(value, '_gt_attention', dtype=PixelData)

    @gt_attention.deleter
    def gt_attention(self) -> None:
        del self._gt_attention
