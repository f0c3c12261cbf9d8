# OAA++ (OAA with the attention drop layer, [T] §3.3, Alg. 1; references and details:
# docs/methods/oaa.md, section 'Attention drop'): with
# probability beta = 0.5 per image, the input pixels where the image's previous accepted
# attention (union over its GT classes) exceeds delta = 0.6 are erased (set to the mean
# colour) before the classifier; the cumulative maps are the product.
#   tools/dist_train.sh configs/oaa/oaa_drop_vgg16_voc.py 8
#   -> work_dirs/oaa_drop_vgg16_voc/oaa_maps
_base_ = ['./oaa_vgg16_voc.py']
# a batch augment of the data preprocessor: after normalisation and padding, in
# training only
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='AttentionDrop', drop_prob=0.5, threshold=0.6)
    ]))
